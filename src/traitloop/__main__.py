from traitloop.cli import app

app()
