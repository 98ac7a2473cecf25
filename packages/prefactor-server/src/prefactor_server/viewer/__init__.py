"""The web viewer: a run list and a run page (span tree, timeline, payloads) at ``/``.

Server-rendered with Jinja2; the CSS and the few lines of JavaScript are served from
``/static``, so nothing is fetched from the internet. The pages read through the storage
layer with the account of the token kept in an HttpOnly cookie (see :mod:`.auth`).

Example::

    app = create_app(settings)   # mounts the viewer with mount_viewer(app)
"""

from prefactor_server.viewer.routes import mount_viewer

__all__ = ["mount_viewer"]
