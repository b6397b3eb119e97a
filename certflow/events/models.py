"""The ``BE_JOB_REQUEST`` envelope Sunbird wraps every job request in, and decoding.

Both certificate flows arrive in this envelope; only ``edata`` differs. The models
accept what Sunbird's producers send (extra keys are kept, so a re-serialised event
still carries them) and leave the *rules* to each flow's ``edata`` model, so that an
absent field becomes Sunbird's ``MANDATORY_PARAMETER_MISSING`` rather than a generic
type error.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Generic, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)
from pydantic_core import PydanticCustomError

from certflow.errors import CertflowError, ErrorCode
from certflow.jsonlimits import loads_bounded

#: Unicode categories that never belong in a name or title on a certificate:
#: controls, surrogates, private-use and unassigned code points, and the line and
#: paragraph separators (U+2028, U+2029: a name is one line, as with ``\n``).
#: Format characters (Cf) are refused too, except the few below: the rest reorder or
#: hide text (bidi overrides and isolates, invisible separators), the classic way to
#: make a credential read differently from what was issued.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})
#: Format characters names need: ZWNJ/ZWJ shape Indic conjuncts, Persian words and
#: emoji sequences; LRM, RLM and the Arabic letter mark only set direction of
#: neutral characters; the soft hyphen is harmless.
_ALLOWED_FORMAT = frozenset({"\u200c", "\u200d", "\u200e", "\u200f", "\u061c", "\u00ad"})
#: Longest display text accepted. Names and titles on a certificate are short; a
#: longer value is a mistake or an attack on the renderer, and is refused whole
#: rather than cut (a truncated name on a credential is a wrong name).
MAX_DISPLAY_CHARS = 512
#: Problems named in one rejection message. A 10,000-recipient event without names
#: has 10,000 problems; the message (logged, and carried by the failed record next
#: to the payload) must stay small, and the first few say what is wrong.
MAX_REPORTED_PROBLEMS = 20
#: Characters of an offending value quoted in a message: enough to recognise it,
#: never a megabyte of it.
MAX_QUOTED_CHARS = 80


def quoted(value: object) -> str:
    """``repr(value)``, cut to :data:`MAX_QUOTED_CHARS` so a huge value cannot bloat a message."""
    shown = repr(value)
    if len(shown) <= MAX_QUOTED_CHARS:
        return shown
    return f"{shown[:MAX_QUOTED_CHARS]}… ({len(shown)} characters)"


def summarise(messages: list[str]) -> str:
    """Join problem messages, naming at most :data:`MAX_REPORTED_PROBLEMS` of them."""
    shown = " ".join(messages[:MAX_REPORTED_PROBLEMS])
    hidden = len(messages) - MAX_REPORTED_PROBLEMS
    return f"{shown} … and {hidden} more problems." if hidden > 0 else shown


def clean_text(value: str) -> str:
    """NFC-normalise and trim display text; reject control and bidi-override characters.

    NFC makes the same name compare (and hash into the same certificate id) however
    the producer composed it. Controls and bidi overrides are rejected rather than
    stripped, because silently changing a learner's name on a credential is worse
    than asking the producer to fix it.
    """
    text = unicodedata.normalize("NFC", value).strip()
    if len(text) > MAX_DISPLAY_CHARS:
        raise PydanticCustomError(
            ErrorCode.INVALID_PARAM_VALUE.value,
            f"is {len(text)} characters long; at most {MAX_DISPLAY_CHARS} are allowed",
        )
    return refuse_hidden_characters(text)


def refuse_hidden_characters(text: str) -> str:
    """``text`` unchanged, or INVALID_PARAM_VALUE if it holds a character that hides
    or reorders what is shown: controls, line/paragraph separators, bidi overrides
    and isolates and other format characters (those names need are allowed)."""
    if text.isprintable():
        # Printable (checked in C) rules out every forbidden category: the
        # character-by-character check below is only for text with a format
        # character (ZWJ in an Indic name) or a separator.
        return text
    for char in text:
        category = unicodedata.category(char)
        if category in _FORBIDDEN_CATEGORIES or (
            category == "Cf" and char not in _ALLOWED_FORMAT
        ):
            raise PydanticCustomError(
                ErrorCode.INVALID_PARAM_VALUE.value,
                f"contains the character U+{ord(char):04X} ({category}), "
                "which is not allowed in display text",
            )
    return text


def check_display_id(value: str) -> str:
    """An identifier that is also shown: held to the display rules but never altered.

    Ids are keys (a learner's partition, the certificate id's inputs, table slots),
    so one is refused rather than normalised, trimmed or stripped: a changed key
    would silently be another learner's or another certificate's.
    """
    if len(value) > MAX_DISPLAY_CHARS:
        raise PydanticCustomError(
            ErrorCode.INVALID_PARAM_VALUE.value,
            f"is {len(value)} characters long; at most {MAX_DISPLAY_CHARS} are allowed",
        )
    return refuse_hidden_characters(value)


#: A string shown to people: NFC, trimmed, no control characters or bidi overrides.
DisplayText = Annotated[str, AfterValidator(clean_text)]
#: An identifier shown on a certificate or page (recipient, course, batch, template,
#: signatory ids …): the display rules, refused rather than changed (it is a key).
DisplayId = Annotated[str, AfterValidator(check_display_id)]
#: A link shown or followed from a certificate (issuer URL, basePath, images,
#: ``data:`` URIs included, so no length limit here): no hidden characters, unchanged.
DisplayLink = Annotated[str, AfterValidator(refuse_hidden_characters)]


class SunbirdModel(BaseModel):
    """Base of every Sunbird-shaped model: field names as Sunbird spells them,
    unknown keys kept (they round-trip through re-serialisation)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_serializer(mode="wrap")
    def _omit_unset_nulls(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Leave out declared fields that are null only because they were absent.

        Re-serialised events should say what the producer said: an optional field the
        producer never sent stays absent (Sunbird's consumers treat absent and null
        alike), while a null the producer did send, above all in an unknown field, is
        kept, so unknown fields really do round-trip.
        """
        data = handler(self)
        if isinstance(data, dict):
            for name in type(self).model_fields:
                if name not in self.model_fields_set and data.get(name, 0) is None:
                    del data[name]
        return data


class Actor(SunbirdModel):
    id: str = ""
    type: str = ""


class ProducerData(SunbirdModel):
    id: str = ""
    ver: str = ""
    pid: str | None = None


class EventContext(SunbirdModel):
    pdata: ProducerData = Field(default_factory=ProducerData)


class EventObject(SunbirdModel):
    id: str = ""
    type: str = ""


EdataT = TypeVar("EdataT", bound=BaseModel)
ModelT = TypeVar("ModelT", bound=BaseModel)


#: An integer Kafka-borne JSON can carry back out. orjson reads a larger literal as
#: a float, which pydantic then accepts as an ``int`` that orjson cannot write:
#: re-serialising the event would fail half-way through an agent.
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class JobRequest(SunbirdModel, Generic[EdataT]):
    """Sunbird's ``BE_JOB_REQUEST`` envelope around a flow's ``edata``."""

    eid: str = "BE_JOB_REQUEST"
    ets: Int64 = 0
    mid: str = ""
    actor: Actor = Field(default_factory=Actor)
    context: EventContext = Field(default_factory=EventContext)
    object: EventObject = Field(default_factory=EventObject)
    edata: EdataT

    def to_json(self) -> bytes:
        """Serialise with Sunbird's field names, as the next stage expects them."""
        return orjson.dumps(self.model_dump(mode="json", by_alias=True))


def decode_json_object(raw: bytes, *, max_bytes: int) -> dict[str, Any]:
    """Decode an event's bytes into a JSON object, or say precisely why not.

    Nesting is bounded (``certflow.jsonlimits``): a document nested too deep is
    ``MALFORMED_JSON`` here, rather than an ``INTERNAL_ERROR`` wherever it is first
    re-serialised or canonicalised.
    """
    if len(raw) > max_bytes:
        raise CertflowError(
            ErrorCode.EVENT_TOO_LARGE,
            f"event is {len(raw)} bytes; the limit is {max_bytes}",
        )
    try:
        decoded = loads_bounded(raw)
    except orjson.JSONDecodeError as exc:
        raise CertflowError(ErrorCode.MALFORMED_JSON, f"not valid JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise CertflowError(
            ErrorCode.MALFORMED_JSON,
            f"the event must be a JSON object, not {type(decoded).__name__}",
        )
    return decoded


def rejection(exc: ValidationError) -> CertflowError:
    """Turn pydantic's errors into one coded rejection, first error first.

    Our own rules raise errors whose type *is* the Sunbird code; pydantic's built-in
    ones map to ``MANDATORY_PARAMETER_MISSING`` (absent) or ``INVALID_PARAM_VALUE``.
    The message lists the problems (up to :data:`MAX_REPORTED_PROBLEMS`) so a
    producer can fix them in one round.
    """
    codes: list[ErrorCode] = []
    messages: list[str] = []
    for error in exc.errors(include_url=False):
        kind = error["type"]
        if kind in ErrorCode.__members__:
            code = ErrorCode(kind)
        elif kind == "missing":
            code = ErrorCode.MANDATORY_PARAMETER_MISSING
        else:
            code = ErrorCode.INVALID_PARAM_VALUE
        location = ".".join(str(part) for part in error["loc"])[:MAX_QUOTED_CHARS]
        codes.append(code)
        if kind in ErrorCode.__members__ and error["loc"] and error["loc"][-1] != "edata":
            messages.append(f"{location}: {error['msg']}.")
        elif kind in ErrorCode.__members__:
            messages.append(error["msg"])
        elif code is ErrorCode.MANDATORY_PARAMETER_MISSING:
            messages.append(f"Mandatory parameter {location} is missing.")
        else:
            messages.append(f"Invalid value for parameter {location}: {error['msg']}.")
    return CertflowError(codes[0], summarise(messages))


def parse_event(
    model: type[ModelT], raw: bytes, *, max_bytes: int, context: dict[str, Any] | None = None
) -> ModelT:
    """Bytes from Kafka to a validated model, or a :class:`CertflowError` saying why not.

    The event's size is passed to validators as ``event_bytes`` in the context, for
    rules about what the event turns into downstream.
    """
    document = decode_json_object(raw, max_bytes=max_bytes)
    try:
        return model.model_validate(document, context={**(context or {}), "event_bytes": len(raw)})
    except ValidationError as exc:
        raise rejection(exc) from None
