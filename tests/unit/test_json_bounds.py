"""One JSON decoding path with bounds (issue 15 item 8 and D1, the parser half).

Every flow's parser refuses, with a short reason and without a traceback: NaN/Infinity, nesting
deeper than LERNFLOW_LIMITS_MAX_DEPTH (here 100,000 levels), bytes that are not UTF-8, an event
over LERNFLOW_LIMITS_MAX_EVENT_BYTES, and a 70,000-character id in every field that becomes a
Cassandra or Redis key. The events are our own, written here.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from lernflow.config import load_settings
from lernflow.config.settings import LimitSettings, SettingsError
from lernflow.flows.activity_aggregate_updater import rules as activity
from lernflow.flows.activity_aggregate_updater.flow import SPEC as ACTIVITY
from lernflow.flows.assessment_aggregator import content as assessment_content
from lernflow.flows.assessment_aggregator.events import parse_assess_message
from lernflow.flows.assessment_aggregator.flow import SPEC as ASSESSMENT
from lernflow.flows.certificate_generator import rules as generator
from lernflow.flows.certificate_generator.flow import SPEC as GENERATOR
from lernflow.flows.certificate_pre_processor import rules as pre
from lernflow.flows.certificate_pre_processor.flow import SPEC as PRE
from lernflow.flows.relation_cache_updater import rules as relation
from lernflow.flows.relation_cache_updater.flow import SPEC as RELATION
from lernflow.flows.shell import FlowSpec, parse_with
from lernflow.flows.skipped import Skipped
from lernflow.flows.user_cache_updater import rules as users
from lernflow.flows.user_cache_updater.flow import SPEC as USERS
from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.jsondoc import Limits, decode
from lernflow.sources import user_rows
from lernflow.sources.kafka import KafkaRecord

LONG_ID = "x" * 70_000
HOLE = "__HOLE__"  # replaced in the serialised event by hostile raw JSON


# -- the six parsers and a good event of each -----------------------------------------------
@dataclass(frozen=True)
class Parser:
    """A flow's parser, a good event for it and the paths of its key ids."""

    name: str
    parse: Callable[[bytes], Any]
    good: Callable[[], dict[str, Any]]
    ids: tuple[tuple[str | int, ...], ...]
    spec: FlowSpec[Any]


def _activity() -> dict[str, Any]:
    return {
        "eid": "BE_JOB_REQUEST",
        "mid": "LF.bounds",
        "edata": {
            "action": "batch-enrolment-update",
            "userId": "lf-user-1",
            "courseId": "lf-course-1",
            "batchId": "lf-batch-1",
            "contents": [{"contentId": "lf-leaf-1", "status": 2}],
        },
    }


def _assessment() -> dict[str, Any]:
    answer = {
        "eid": "ASSESS",
        "ets": 1_600_000_000_000,
        "edata": {
            "item": {"id": "q1", "maxscore": 1, "params": [], "title": "t", "type": "mcq"},
            "score": 1,
            "resvalues": [],
            "duration": 3,
        },
    }
    return {
        "courseId": "lf-course-1",
        "batchId": "lf-batch-1",
        "userId": "lf-user-1",
        "contentId": "lf-quiz-1",
        "attemptId": "lf-attempt-1",
        "assessmentTs": 1_600_000_000_000,
        "events": [answer],
    }


def _relation() -> dict[str, Any]:
    return {
        "eid": "BE_JOB_REQUEST",
        "edata": {
            "action": "post-publish-process",
            "mimeType": "application/vnd.ekstep.content-collection",
            "identifier": "lf-course-1",
        },
    }


def _users() -> dict[str, Any]:
    return {
        "eid": "AUDIT",
        "actor": {"id": "lf-user-1", "type": "User"},
        "object": {"id": "lf-user-1", "type": "User"},
        "edata": {"state": "Update"},
        "context": {"pdata": {"pid": "learner-service"}, "cdata": []},
    }


def _pre() -> dict[str, Any]:
    return {
        "eid": "BE_JOB_REQUEST",
        "edata": {
            "action": "issue-certificate",
            "batchId": "lf-batch-1",
            "courseId": "lf-course-1",
            "userIds": ["lf-user-1", "lf-user-2"],
        },
    }


def _generator() -> dict[str, Any]:
    return {
        "eid": "BE_JOB_REQUEST",
        "edata": {
            "userId": "lf-user-1",
            "name": "Course completion",
            "svgTemplate": "https://lf.example/t.svg",
            "data": [{"recipientId": "lf-user-1", "recipientName": "Ada"}],
            "related": {"courseId": "lf-course-1", "batchId": "lf-batch-1"},
        },
    }


PARSERS = [
    Parser("activity", activity.parse_request, _activity,
           (("edata", "userId"), ("edata", "courseId"), ("edata", "batchId"),
            ("edata", "contents", 0, "contentId")), ACTIVITY),
    Parser("assessment", parse_assess_message, _assessment,
           (("userId",), ("courseId",), ("batchId",), ("contentId",), ("attemptId",)), ASSESSMENT),
    Parser("relation", relation.parse_event, _relation, (("edata", "identifier"),), RELATION),
    Parser("user-cache", users.parse_event, _users,
           (("object", "id"), ("actor", "id")), USERS),
    Parser("pre-processor", pre.parse_request, _pre,
           (("edata", "batchId"), ("edata", "courseId"), ("edata", "userIds", 0),
            ("edata", "userIds", 1)), PRE),
    Parser("generator", generator.parse_request, _generator,
           (("edata", "userId"), ("edata", "related", "courseId"),
            ("edata", "related", "batchId"), ("edata", "data", 0, "recipientId")), GENERATOR),
]  # fmt: skip
EACH = pytest.mark.parametrize("p", PARSERS, ids=[p.name for p in PARSERS])
EACH_ID = pytest.mark.parametrize(
    ("p", "path"),
    [(p, path) for p in PARSERS for path in p.ids],
    ids=[f"{p.name}:{'.'.join(map(str, path))}" for p in PARSERS for path in p.ids],
)


def with_hole(doc: dict[str, Any], raw: bytes) -> bytes:
    """``doc`` serialised, with ``raw`` (any bytes) as the value of a top-level field ``x``."""
    text = json.dumps({**doc, "x": HOLE}).encode()
    return text.replace(f'"{HOLE}"'.encode(), raw)


def set_path(doc: Any, path: tuple[str | int, ...], value: Any) -> None:
    for step in path[:-1]:
        doc = doc[step]
    doc[path[-1]] = value


def reason_of(p: Parser, raw: bytes) -> str:
    with pytest.raises(InvalidEvent) as exc:
        p.parse(raw)
    return exc.value.reason


def path_text(p: Parser, path: tuple[str | int, ...]) -> str:
    """How the parser names a field: ``edata.userIds[0]``, ``edata.related.courseId``."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


# -- each parser, each hostile input ------------------------------------------------------
@EACH
def test_a_good_event_parses(p):
    value = p.parse(json.dumps(p.good()).encode())
    assert not isinstance(value, Skipped)


@EACH
@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_refused(p, constant):
    reason = reason_of(p, with_hole(p.good(), constant))
    assert f"not valid JSON: {constant.decode()} is not a JSON number" in reason


@EACH
def test_a_number_beyond_the_double_range_is_refused(p):
    reason = reason_of(p, with_hole(p.good(), b"1e999"))
    assert "number 1e999 is out of the double range" in reason


@EACH
def test_nesting_100000_deep_is_refused_without_a_recursion_error(p):
    raw = with_hole(p.good(), b"[" * 100_000 + b"]" * 100_000)
    reason = reason_of(p, raw)
    assert "nested too deeply (over 64 levels, LERNFLOW_LIMITS_MAX_DEPTH)" in reason


@EACH
def test_nesting_of_65_is_refused_and_64_accepted(p):
    # the event's own object is one level: 63 more brackets make 64 in all
    assert not isinstance(p.parse(with_hole(p.good(), b"[" * 63 + b"]" * 63)), InvalidEvent)
    assert "over 64 levels" in reason_of(p, with_hole(p.good(), b"[" * 64 + b"]" * 64))


@EACH
def test_brackets_inside_strings_do_not_count_as_nesting(p):
    raw = with_hole(p.good(), json.dumps("[{" * 1_000 + '\\"[').encode())
    assert not isinstance(p.parse(raw), InvalidEvent)


@EACH
def test_bytes_that_are_not_utf8_are_refused(p):
    raw = with_hole(p.good(), b'"caf\xe9"')  # Latin-1, not UTF-8
    assert "not UTF-8" in reason_of(p, raw)


@EACH
def test_utf16_is_not_guessed(p):
    raw = json.dumps(p.good()).encode("utf-16")
    assert "not UTF-8" in reason_of(p, raw)


@EACH
def test_an_event_over_the_size_limit_is_refused_with_its_size(p):
    raw = with_hole(p.good(), json.dumps("a" * 2_000_000).encode())
    reason = reason_of(p, raw)
    assert f"is {len(raw):,} bytes, over the 1,048,576-byte limit" in reason
    assert "(LERNFLOW_LIMITS_MAX_EVENT_BYTES)" in reason


@EACH_ID
def test_a_70000_character_id_is_refused_naming_the_field(p, path):
    doc = p.good()
    set_path(doc, path, LONG_ID)
    reason = reason_of(p, json.dumps(doc).encode())
    assert reason == (
        f"{path_text(p, path)} is 70,000 characters, over the 256-character limit "
        "(LERNFLOW_LIMITS_MAX_ID_CHARS)"
    )


@EACH_ID
def test_an_id_of_256_characters_is_accepted(p, path):
    doc = p.good()
    set_path(doc, path, "y" * 256)
    assert not isinstance(p.parse(json.dumps(doc).encode()), InvalidEvent)


@EACH_ID
def test_an_id_with_an_unpaired_surrogate_is_refused(p, path):
    doc = p.good()
    set_path(doc, path, "lf-\ud800")
    reason = reason_of(p, json.dumps(doc).encode())  # ASCII JSON: "\ud800"
    assert path_text(p, path) in reason and "unpaired surrogate" in reason


# -- the limits come from the settings ------------------------------------------------------
def _record(value: bytes) -> KafkaRecord:
    return KafkaRecord("t", 0, 7, None, value, 0)


@EACH
def test_the_flow_parse_step_uses_the_limits_settings(p, monkeypatch):
    monkeypatch.setenv("LERNFLOW_LIMITS_MAX_ID_CHARS", "20")
    monkeypatch.setenv("LERNFLOW_LIMITS_MAX_DEPTH", "8")
    monkeypatch.setenv("LERNFLOW_LIMITS_MAX_EVENT_BYTES", "4096")
    step = p.spec.parser(load_settings())
    doc = p.good()
    set_path(doc, p.ids[0], "z" * 21)
    assert "over the 20-character limit" in (step(_record(json.dumps(doc).encode())).error or "")
    deep = step(_record(with_hole(p.good(), b"[" * 8 + b"]" * 8)))
    assert "over 8 levels" in (deep.error or "")
    big = step(_record(with_hole(p.good(), json.dumps("a" * 5000).encode())))
    assert "over the 4,096-byte limit" in (big.error or "")
    good = step(_record(json.dumps(p.good()).encode()))
    assert good.error is None


@pytest.mark.parametrize(
    ("var", "value"),
    [("LERNFLOW_LIMITS_MAX_ID_CHARS", "70000"), ("LERNFLOW_LIMITS_MAX_DEPTH", "100000"),
     ("LERNFLOW_LIMITS_MAX_EVENT_BYTES", "10")],
)  # fmt: skip
def test_limits_far_from_safe_are_refused_at_start(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=var):
        load_settings()


def test_the_limits_defaults():
    assert Limits.of(LimitSettings()) == Limits(1_048_576, 64, 256)


# -- the shell: bad input never logs a traceback; a parser bug does, once -------------------
@EACH
def test_hostile_events_log_no_traceback_in_the_parse_step(p, caplog):
    step = p.spec.parser(load_settings())
    hostile = [
        with_hole(p.good(), b"[" * 100_000 + b"]" * 100_000),
        with_hole(p.good(), b"NaN"),
        with_hole(p.good(), b'"\xff"'),
        with_hole(p.good(), json.dumps("a" * 2_000_000).encode()),
    ]
    with caplog.at_level(logging.DEBUG):
        items = [step(_record(raw)) for raw in hostile]
    assert all(i.error and i.error_type == "InvalidEvent" for i in items)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]


def test_a_recursion_error_in_a_parser_is_parked_with_one_warning_line(caplog):
    def parse(_value: bytes) -> Any:
        raise RecursionError

    step = parse_with("lf-test", parse, str)
    with caplog.at_level(logging.DEBUG, logger="lernflow.flows.shell"):
        item = step(_record(b"{}"))
    assert item.error_type == "InvalidEvent" and "nested too deeply" in (item.error or "")
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.WARNING, None)]


def test_a_parser_bug_logs_its_traceback_once_per_exception_type(caplog):
    def parse(value: bytes) -> Any:
        if value == b"k":
            raise KeyError(value)
        raise ValueError("v" * 1_000)

    step = parse_with("lf-test", parse, str)
    with caplog.at_level(logging.DEBUG, logger="lernflow.flows.shell"):
        items = [step(_record(v)) for v in (b"k", b"k", b"v", b"k", b"v")]
    assert [i.error_type for i in items] == ["ParseError"] * 5
    assert items[0].error == "parser bug: KeyError(b'k')"
    assert len(items[2].error or "") <= 301
    logged = [(r.levelno, r.exc_info is not None) for r in caplog.records]
    assert logged == [
        (logging.ERROR, True), (logging.WARNING, False), (logging.ERROR, True),
        (logging.WARNING, False), (logging.WARNING, False),
    ]  # fmt: skip


# -- the JSON helpers of the rules and the stored documents go through the same path ----------
def test_the_hierarchy_keeps_jackson_escapes_and_refuses_constants_and_deep_nesting():
    assert relation.parse_hierarchy('{"name": "it\\\'s", "identifier": "c"}') == {
        "name": "it's", "identifier": "c",
    }  # fmt: skip
    with pytest.raises(InvalidEvent, match="hierarchy is not valid JSON: NaN is not a JSON"):
        relation.parse_hierarchy('{"identifier": "c", "x": NaN}')
    deep = '{"identifier": "c", "children": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(InvalidEvent, match=r"hierarchy is nested too deeply \(over 400 levels\)"):
        relation.parse_hierarchy(deep)


def test_a_stored_document_is_not_held_to_the_event_size_limit():
    hierarchy = json.dumps({"identifier": "c", "description": "d" * 2_000_000})
    assert relation.parse_hierarchy(hierarchy) is not None


def test_gson_written_caches_keep_nan_and_infinity_as_numbers():
    assert assessment_content.total_questions_from_cache('{"totalQuestions": Infinity}') == (
        2**31 - 1
    )
    assert assessment_content.total_questions_from_cache('{"totalQuestions": NaN}') == 0
    assert pre.normalise_content_metadata('{"contentType": "SelfAssess", "x": NaN}')[
        "contenttype"
    ] == "SelfAssess"  # fmt: skip
    deep = '{"contentType": "SelfAssess", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert assessment_content.total_questions_from_cache(deep) == 0
    assert pre.normalise_content_metadata(deep) == {}


def test_a_deep_user_read_answer_is_invalid_not_a_crash():
    body = b'{"responseCode": "OK", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(InvalidEvent, match="response is nested too deeply"):
        users.parse_user_read(body, "lf-user-1")


def test_stored_profile_columns_that_are_too_deep_or_not_json_read_as_none():
    deep = '[{"id": "l1", "type": "state", "x": ' + "[" * 100_000 + "]" * 100_000 + "}]"
    assert user_rows.profile_location_refs({"profilelocation": deep}) == []
    assert user_rows.profile_location_refs({"profilelocation": "[NaN]"}) == []
    assert user_rows.profile_location_refs({"profilelocation": '[{"id": "l1"}]'}) == [
        {"id": "l1", "type": ""}
    ]


def test_a_template_field_deeper_than_a_stored_document_is_a_bad_template():
    deep = '{"enrollment": ' + "[" * 100_000 + "]" * 100_000 + "}"
    [out] = pre.templates({"t": {"url": "https://lf.example/t.svg", "criteria": deep}})
    assert (
        isinstance(out, pre.Rejected) and out.fatal and "criteria is not valid JSON" in out.reason
    )


def test_many_user_ids_are_deduplicated_in_order_in_linear_time():
    doc = _pre()
    doc["edata"]["userIds"] = [f"u{i % 30_000}" for i in range(60_000)]
    started = time.monotonic()
    request = pre.parse_request(json.dumps(doc).encode())
    assert time.monotonic() - started < 3  # ~0.05 s; a list scan per id took ~10 s
    assert isinstance(request, pre.IssueRequest)
    assert request.user_ids == tuple(f"u{i}" for i in range(30_000))


# -- the depth scan agrees with the parsed document's depth -----------------------------------
def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_TRICKY = st.sampled_from(["[", "]", "{", "}", '"', "\\", "é", "a"])
_JSON = st.recursive(
    st.none() | st.integers() | st.text(_TRICKY, max_size=6) | st.floats(allow_nan=False,
                                                                          allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(_TRICKY, max_size=3),
                                                                inner, max_size=3),
    max_leaves=40,
)  # fmt: skip


@hsettings(max_examples=400, deadline=None)
@given(_JSON, st.integers(1, 8), st.booleans())
def test_the_depth_bound_matches_the_documents_depth(doc, limit, ascii_only):
    text = json.dumps(doc, ensure_ascii=ascii_only)
    limits = Limits(max_depth=limit)
    if _depth(doc) > limit:
        with pytest.raises(InvalidEvent, match="nested too deeply"):
            decode(text, limits)
        with pytest.raises(InvalidEvent, match="nested too deeply"):
            decode(text.encode(), limits)
    else:
        assert decode(text, limits) == doc
        assert decode(text.encode(), limits) == doc


def test_decode_refuses_what_json_loads_accepts():
    for raw in (b"NaN", b"[Infinity]", b"[-Infinity]", b"[1e400]", b'"\xff"'):
        with pytest.raises(InvalidEvent):
            decode(raw)
    assert math.isinf(decode(b"[Infinity]", constants=True)[0])


def test_invalid_json_keeps_the_decoder_message():
    with pytest.raises(InvalidEvent, match=r"^event is not valid JSON: Expecting"):
        decode(b"{not json")
    with pytest.raises(InvalidEvent, match=r"^message is not valid JSON: Expecting"):
        decode(b"{not json", what="message")
