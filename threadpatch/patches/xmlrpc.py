"""xmlrpc.client: a cancelled call closes the proxy's connection, as any error in it does.

``Transport.single_request`` clears its connection on ``except Exception``;
a cancellation (a ``BaseException``) would leave it waiting for the
interrupted answer, and every later call through the same ``ServerProxy``
would raise ``CannotSendRequest``.  Wrapped on the class, so proxies made
before patching are covered.  See :mod:`threadpatch._cleanup`.
"""

import xmlrpc.client as _client

from .. import _cleanup

TARGET = "xmlrpc.client"
REPLACEMENTS: dict[str, object] = {}
CLASS_REPLACEMENTS = {
    (_client.Transport, "single_request"): _cleanup.cleans_up_on_cancel(
        _client.Transport.single_request
    ),
}
