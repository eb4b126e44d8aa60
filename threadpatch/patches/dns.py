"""Make the resolver functions of ``socket`` cancellable (``getfqdn`` calls them)."""

from .. import _dns

TARGET = "socket"
REPLACEMENTS = {
    "getaddrinfo": _dns.getaddrinfo,
    "gethostbyname": _dns.gethostbyname,
    "gethostbyname_ex": _dns.gethostbyname_ex,
    "gethostbyaddr": _dns.gethostbyaddr,
    "getnameinfo": _dns.getnameinfo,
}
