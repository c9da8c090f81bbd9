"""The web process entry point for gunicorn: `gunicorn wsgi:app`."""

from connector.web import create_app

app = create_app()
