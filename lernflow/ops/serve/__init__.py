"""``lernflow serve``: the certificate verification page behind every QR code (docs/serve.md).

* :mod:`.security` — the ASGI wrappers every answer passes through: security headers, bounded
  request bodies;
* :mod:`.lookup` — a certificate id to its stored file, verified by
  :mod:`lernflow.certificates.binding` (the checks of ``lernflow cert verify``);
* :mod:`.pages` — the HTML page and the JSON of a verification;
* :mod:`.app` — the route table (:data:`.app.ROUTE_GROUPS`, extended by adding a group) and
  :func:`.app.create_app`.
"""
