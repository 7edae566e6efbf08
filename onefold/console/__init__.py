"""The console: server-rendered pages for marketers, analysts and data engineers, served by ``onefold serve``.

Pages read the stages' tables and services and render them; every decision (who may do what, what a merge
means, who is in an audience) is made in the stage that owns it. Nothing imports this package but the server.
"""
