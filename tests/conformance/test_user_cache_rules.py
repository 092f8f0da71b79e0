"""Conformance: user-cache-updater rules against Sunbird's own user-cache test files.

The same cases with the project's own data: ``tests/unit/test_user_cache_rules.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lernflow.flows.skipped import Skipped
from lernflow.flows.user_cache_updater import rules
from lernflow.kernel.errors import InvalidEvent
from tests.conformance.conftest import SUNBIRD_FIXTURES

FX = SUNBIRD_FIXTURES / "usercache"
USER1_HASH_FIELDS = (
    "firstname",
    "lastname",
    "state",
    "district",
    "block",
    "cluster",
    "schooludisecode",
    "schoolname",
)


def _event(name: str) -> rules.AuditUser | Skipped:
    return rules.parse_event((FX / name).read_bytes())


def _accepted(name: str) -> rules.AuditUser:
    event = _event(name)
    assert isinstance(event, rules.AuditUser)
    return event


def _read(name: str, user_id: str) -> rules.Profile | rules.Blocked:
    return rules.parse_user_read((FX / name).read_bytes(), user_id)


def _profile(name: str) -> rules.Profile:
    info = _read(name, "u")
    assert isinstance(info, rules.Profile)
    return info


def _process(
    store: dict[str, dict[str, str]], event_name: str, response: str | None
) -> rules.Write | Skipped:
    """One event through the rules, as the flow does: parse, read if registered, plan, apply."""
    event = _event(event_name)
    if isinstance(event, Skipped):
        return event
    info = _read(response, event.user_id) if event.registered and response else None
    write = rules.plan(event, info)
    if isinstance(write, rules.Write):
        store[write.key] = rules.apply(store.get(write.key, {}), write)
    return write


def _raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def _audit(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "eid": "AUDIT",
        "mid": "m-1",
        "object": {"id": "user-x", "type": "User"},
        "edata": {"state": "Update"},
        "context": {"pdata": {"pid": "sunbird.app"}, "cdata": [{"type": "UserRole", "id": "t"}]},
    }
    doc.update(overrides)
    return doc


def _response(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"firstName": "A", "rootOrg": {"orgName": "Org"}}
    base.update(fields)
    return base


# --------------------------------------------------------------------------- upstream test 1

TEST1 = json.loads((FX / "v2_expected_redis_test1_InputSource.json").read_text())


def _run_test1() -> dict[str, dict[str, str]]:
    store: dict[str, dict[str, str]] = {}
    for step in TEST1["events_in_order"]:
        _process(store, step["event"], step["api_response_fixture"])
    return store


def test_test1_final_hashes_match_every_asserted_value():
    store = _run_test1()
    for key, expected in TEST1["keys"].items():
        got = store.get(key, {})
        for field, value in expected["asserted"].items():
            if value is None:
                assert field not in got, (key, field)
            else:
                assert got.get(field) == value, (key, field)


def test_test1_final_hashes_equal_the_derived_full_hashes():
    store = _run_test1()
    derived = {
        k: v["derived_full_hash"] for k, v in TEST1["keys"].items() if "derived_full_hash" in v
    }
    assert len(derived) == 7
    for key, expected in derived.items():
        assert store[key] == expected, key
    assert set(store) == set(derived)  # user:user-7 (wrong state) is never written


def test_test1_counts_seven_writes_and_two_skips_of_the_right_kinds():
    store: dict[str, dict[str, str]] = {}
    outcomes = [
        _process(store, s["event"], s["api_response_fixture"]) for s in TEST1["events_in_order"]
    ]
    assert sum(isinstance(o, rules.Write) for o in outcomes) == 7
    assert isinstance(outcomes[6], Skipped) and outcomes[6].kind == "not-a-user"
    assert isinstance(outcomes[7], Skipped) and outcomes[7].kind == "unsupported-state"
    assert "wrongState" in outcomes[7].reason


def test_content_object_event_is_not_a_user():
    result = _event("v2_event_07_content_object_skip.json")
    assert isinstance(result, Skipped) and result.kind == "not-a-user"


def test_wrong_state_event_is_an_unsupported_state():
    result = _event("v2_event_08_user-7_wrongState.json")
    assert isinstance(result, Skipped) and result.kind == "unsupported-state"


def test_upstream_events_parse_to_user_id_state_producer_and_signin_type():
    e1 = _accepted("v2_event_01_user-1_update_learner_google.json")
    assert e1 == rules.AuditUser(
        user_id="user-1",
        state="Update",
        registered=True,
        general={"usersignintype": "Self-Signed-In"},
        mid="1573121861118.40f9136b-1cc3-458d-a04a-4459606df",
    )
    e2 = _accepted("v2_event_02_user-8_mergeUser_update_learner.json")
    assert (e2.user_id, e2.registered, e2.general) == ("user-8", True, {})
    e6 = _accepted("v2_event_06_user-5_created_learner_sso.json")
    assert (e6.state, e6.general) == ("Created", {"usersignintype": "Validated"})


def test_registered_event_writes_user_read_fields_and_deletes_only_absent_removable_ones():
    event = _accepted("v2_event_04_user-3_update_learner_google.json")
    write = rules.plan(event, _read("v2_userread_user3.json", "user-3"))
    assert isinstance(write, rules.Write)
    assert write.key == "user:user-3"
    assert write.delete_if_stale == ("block",)  # user-3 has no block location
    write4 = rules.plan(
        _accepted("v2_event_05_user-4_update_learner_google.json"),
        _profile("v2_userread_user4.json"),
    )
    assert isinstance(write4, rules.Write)
    assert write4.delete_if_stale == ("schooludisecode", "schoolname")


def test_bracketed_names_are_escaped_but_json_lists_are_not():
    write = rules.plan(
        _accepted("v2_event_09_user-10_update_learner_bracket_names.json"),
        _read("v2_userread_user10.json", "user-10"),
    )
    assert isinstance(write, rules.Write)
    assert write.hset["block"] == "BLOCK1\\]"
    assert write.hset["schoolname"] == "\\[RPMMAT M.S UDHADIH"
    assert write.hset["language"] == '["English"]'
    assert (
        write.hset["profileusertypes"] == '\\[{"type":"administrator"}\\]'
    )  # null subType dropped
    assert write.hset["usersubtype"] == ""


def test_test2_app_producer_merges_userlogintype_and_keeps_every_previous_field():
    expected = json.loads((FX / "v2_expected_test2_producer_ids.json").read_text())
    store: dict[str, dict[str, str]] = {}
    for step_name in ("step1", "step2"):
        step = expected[step_name]
        write = _process(store, step["event"], step.get("api_response_fixture"))
        assert isinstance(write, rules.Write)
        for field, value in step["asserted"].items():
            if value is None:
                assert field not in store["user:user-1"]
            else:
                assert store["user:user-1"][field] == value
    assert isinstance(write, rules.Write)
    assert write.hset == {"userlogintype": "teacher"}
    assert write.delete_if_stale == ()
    before = rules.plan(
        _accepted("v2_event_user-1_learner_pid.json"), _profile("v2_userread_user1.json")
    )
    assert isinstance(before, rules.Write)
    assert store["user:user-1"] == {**before.hset, "userlogintype": "teacher"}


def test_app_producer_event_is_not_registered():
    event = _accepted("v2_event_user-1_app_pid_userrole_teacher.json")
    assert event.registered is False
    assert event.general == {"userlogintype": "teacher"}
    assert rules.plan(event, None) == rules.Write("user:user-1", {"userlogintype": "teacher"}, ())


def test_test3_blocked_user_without_cdata_writes_nothing():
    expected = json.loads((FX / "v2_expected_test3_throw_exception.json").read_text())
    step = expected["sequence"][1]
    event = _accepted(step["event"])
    info = _read("v2_userread_errors_clientError.json", event.user_id)
    assert info == rules.Blocked("user-8")
    result = rules.plan(event, info)
    assert isinstance(result, Skipped) and result.kind == "no-data"


def test_test3_resource_not_found_is_invalid_with_sunbirds_message():
    event = _accepted("v2_event_03_user-2_update_learner_google.json")
    with pytest.raises(InvalidEvent) as exc:
        _read("v2_userread_user2.json", event.user_id)
    assert exc.value.reason.startswith("User Read API does not have details for user: user-2")
    assert "RESOURCE_NOT_FOUND" in exc.value.reason
    assert "USER_NOT_FOUND" in exc.value.reason


def test_blocked_user_with_cdata_still_deletes_removable_fields():
    store: dict[str, dict[str, str]] = {}
    _process(store, "v2_event_01_user-1_update_learner_google.json", "v2_userread_user1.json")
    before = dict(store["user:user-1"])
    event = _accepted("v2_event_01_user-1_update_learner_google.json")
    write = rules.plan(event, rules.Blocked("user-1"))
    assert write == rules.Write(
        "user:user-1", {"usersignintype": "Self-Signed-In"}, rules.REMOVABLE_FIELDS
    )
    assert rules.stale_fields(before, write) == list(rules.REMOVABLE_FIELDS)
    after = rules.apply(before, write)
    assert not set(rules.REMOVABLE_FIELDS) & set(after)
    assert after == {k: v for k, v in before.items() if k not in rules.REMOVABLE_FIELDS}


def test_other_client_errors_and_ok_without_response_are_invalid():
    for name in ("v2_userread_clientError.json", "v2_userread_invalid_json.json"):
        with pytest.raises(InvalidEvent) as exc:
            _read(name, "user-9")
        assert exc.value.reason.startswith("User Read API does not have details for user: user-9")
    with pytest.raises(InvalidEvent, match="USER_ACCOUNT_BLOCKED"):
        _read("v2_userread_clientError.json", "user-9")


def test_user1_profile_fields_keep_python_types_before_stringify():
    fields = _profile("v2_userread_user1.json").fields
    assert fields["language"] == ["English"]
    assert fields["phone"] is None and fields["email"] is None
    assert fields["board"] == "IGOT-Health" and fields["framework"] == "igot_health"
    assert fields["grade"] == ["Volunteers"]
    assert fields["usertype"] == "administrator,teacher,other,parent"
    assert fields["usersubtype"] == "hm,crp"
    assert fields["profileusertypes"] == (
        '[{"subType":"hm","type":"administrator"},{"type":"teacher"},'
        '{"subType":"crp","type":"administrator"},{"type":"other"},{"type":"parent"}]'
    )


def test_registered_event_without_read_result_is_a_programming_error():
    with pytest.raises(ValueError, match="user-read"):
        rules.plan(_accepted("v2_event_01_user-1_update_learner_google.json"), None)
