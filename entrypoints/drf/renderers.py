"""JSON out, whatever a client sent in."""

from rest_framework.renderers import JSONRenderer


class SurrogateSafeJSONRenderer(JSONRenderer):
    """Also renders answers that quote a client's unpaired surrogate.

    A JSON body may hold "\\ud800", which no UTF-8 text can; error messages quote
    what the client sent (an unknown field named "\\udc00", an account type
    "\\udfff"). Such an answer is written with \\u escapes instead of failing.
    """

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return _AsciiJSONRenderer().render(data, accepted_media_type, renderer_context)


class _AsciiJSONRenderer(JSONRenderer):
    ensure_ascii = True
