"""The seed service's REST API (``POST /api/parse``) and WebUI, on the ZeroMQ server's engine.

Enabled with ``m2fp-server --http [HOST:PORT]``.  Modules: ``errors`` (JSON codes
and HTTP statuses), ``images`` (upload checks, PNG encoding), ``parsing`` (one
photo through the shared engine), ``app`` (the WSGI routes), ``settings`` (limits,
--http address checks), ``frontend`` (the threaded server), ``cli`` (the options),
``static/`` (the page).  Nothing is imported here, so ``m2fp --help`` never loads
Werkzeug.
"""
