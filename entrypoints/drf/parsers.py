"""JSON in, with numbers kept exact: money never passes through a float."""

import codecs
import json
from collections import Counter
from decimal import Decimal

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _exact_number(text: str) -> Decimal:
    if "e" in text or "E" in text:
        raise ValueError(f"{text} uses exponent notation; write plain decimals such as 125.00")
    return Decimal(text)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number a bank can hold")


def _object_without_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    # json keeps the last of two equal keys; a gateway or a person reading the
    # first would see another request than the one executed.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        twice = sorted(name for name, count in Counter(name for name, _ in pairs).items() if count > 1)
        raise ValueError(f"the key(s) {', '.join(map(repr, twice[:5]))} appear more than once in one object")
    return obj


class DecimalJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.load(
                codecs.getreader(encoding)(stream),
                parse_float=_exact_number,
                parse_constant=_refuse_constant,
                object_pairs_hook=_object_without_duplicate_keys,
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"The request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise ParseError("The request body is nested too deeply to be a TechBank request.") from None
