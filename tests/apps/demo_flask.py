"""Placeholder demo app (the tests branch brings the real one)."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello, World!"
