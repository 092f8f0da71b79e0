"""user-cache-updater rules reproduce Sunbird's user-cache tests (spec A10) and value encoding."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.user_cache_updater import rules
from lernflow.errors import InvalidEvent
from tests.conftest import FIXTURES

FX = FIXTURES / "usercache"
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


def _event(name: str) -> rules.AuditUser | rules.Skipped:
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
) -> rules.Write | rules.Skipped:
    """One event through the rules, as the flow does: parse, read if registered, plan, apply."""
    event = _event(event_name)
    if isinstance(event, rules.Skipped):
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
    assert isinstance(outcomes[6], rules.Skipped) and outcomes[6].kind == "not-a-user"
    assert isinstance(outcomes[7], rules.Skipped) and outcomes[7].kind == "unsupported-state"
    assert "wrongState" in outcomes[7].reason


def test_content_object_event_is_not_a_user():
    result = _event("v2_event_07_content_object_skip.json")
    assert isinstance(result, rules.Skipped) and result.kind == "not-a-user"


def test_wrong_state_event_is_an_unsupported_state():
    result = _event("v2_event_08_user-7_wrongState.json")
    assert isinstance(result, rules.Skipped) and result.kind == "unsupported-state"


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


# --------------------------------------------------------------------------- upstream test 2


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


# --------------------------------------------------------------------------- upstream test 3


def test_test3_blocked_user_without_cdata_writes_nothing():
    expected = json.loads((FX / "v2_expected_test3_throw_exception.json").read_text())
    step = expected["sequence"][1]
    event = _accepted(step["event"])
    info = _read("v2_userread_errors_clientError.json", event.user_id)
    assert info == rules.Blocked("user-8")
    result = rules.plan(event, info)
    assert isinstance(result, rules.Skipped) and result.kind == "no-data"


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


# --------------------------------------------------------------------------- user-read answers


def test_other_client_errors_and_ok_without_response_are_invalid():
    for name in ("v2_userread_clientError.json", "v2_userread_invalid_json.json"):
        with pytest.raises(InvalidEvent) as exc:
            _read(name, "user-9")
        assert exc.value.reason.startswith("User Read API does not have details for user: user-9")
    with pytest.raises(InvalidEvent, match="USER_ACCOUNT_BLOCKED"):
        _read("v2_userread_clientError.json", "user-9")


@pytest.mark.parametrize(
    ("body", "seen"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"<html>502</html>", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"responseCode": "CLIENT_ERROR", "params": null}', "params missing"),
        (b'{"responseCode": "SERVER_ERROR", "params": {"err": "UOS_USRRED0006"}}', "SERVER_ERROR"),
        (b'{"responseCode": "OK", "result": {}}', "result.response missing"),
        (b'{"responseCode": "OK", "result": {"response": null}}', "result.response missing"),
        (b'{"params": {}}', "responseCode=None"),
    ],
)
def test_unusable_user_read_bodies_are_invalid_with_what_was_seen(body, seen):
    with pytest.raises(InvalidEvent) as exc:
        rules.parse_user_read(body, "u-1")
    assert exc.value.reason.startswith("User Read API does not have details for user: u-1")
    assert seen in exc.value.reason


def test_blocked_code_and_error_compare_ignoring_case_and_codes_are_configurable():
    body = b'{"responseCode": "client_error", "params": {"err": "uos_usrred0006"}}'
    assert rules.parse_user_read(body, "u") == rules.Blocked("u")
    cfg = rules.RulesConfig(api_error_codes=("FORBIDDEN",))
    forbidden = b'{"responseCode": "Forbidden", "params": {"err": "UOS_USRRED0006"}}'
    assert rules.parse_user_read(forbidden, "u", cfg) == rules.Blocked("u")
    with pytest.raises(InvalidEvent):
        rules.parse_user_read(body, "u", cfg)


def test_wrongly_typed_profile_in_an_ok_answer_is_invalid_with_the_read_prefix():
    body = json.dumps({"responseCode": "OK", "result": {"response": {"rootOrg": []}}}).encode()
    with pytest.raises(InvalidEvent) as exc:
        rules.parse_user_read(body, "u-2")
    assert exc.value.reason.startswith("User Read API does not have details for user: u-2")
    assert "rootOrg must be an object" in exc.value.reason


def test_ok_response_code_is_case_insensitive():
    body = json.dumps({"responseCode": "ok", "result": {"response": _response()}}).encode()
    info = rules.parse_user_read(body, "u")
    assert isinstance(info, rules.Profile) and info.fields["firstname"] == "A"


# --------------------------------------------------------------------------- profile fields


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


def test_missing_root_org_or_org_name_gives_empty_orgname_instead_of_crashing():
    assert rules.profile_fields({"firstName": "A"})["orgname"] == ""
    assert rules.profile_fields({"rootOrg": None})["orgname"] == ""
    assert rules.profile_fields({"rootOrg": {"id": "x"}})["orgname"] == ""
    assert rules.profile_fields({"rootOrg": {"orgName": "O"}})["orgname"] == "O"


def test_empty_or_absent_framework_writes_no_framework_fields():
    for response in (_response(), _response(framework={}), _response(framework=None)):
        fields = rules.profile_fields(response)
        assert not {"board", "medium", "grade", "subject", "framework"} & set(fields)


def test_partial_framework_defaults_to_empty_board_id_and_lists():
    fields = rules.profile_fields(_response(framework={"medium": ["Hindi"], "board": []}))
    assert (fields["board"], fields["framework"]) == ("", "")
    assert (fields["medium"], fields["grade"], fields["subject"]) == (["Hindi"], [], [])


def test_locations_use_type_as_given_school_ignoring_case_and_later_ones_win():
    locations = [
        {"type": "state", "name": "S1"},
        {"type": "State", "name": "S2"},
        {"type": "state", "name": "S3"},
        {"type": "SCHOOL", "name": "Sch", "code": "C1"},
        {"type": "location"},
        {"name": "untyped"},
        {"type": "school"},
    ]
    fields = rules.profile_fields(_response(userLocations=locations))
    assert fields["state"] == "S3" and fields["State"] == "S2"
    assert fields["location"] == "" and fields[""] == "untyped"
    assert (fields["schoolname"], fields["schooludisecode"]) == ("", "")  # the later school


def test_profile_user_types_are_distinct_in_first_seen_order_and_only_when_present():
    types = [
        {"type": "teacher", "subType": None},
        {"type": "administrator", "subType": "hm"},
        {"type": "teacher", "subType": ""},
        {"type": "", "subType": "hm"},
    ]
    fields = rules.profile_fields(_response(profileUserTypes=types))
    assert (fields["usertype"], fields["usersubtype"]) == ("teacher,administrator", "hm")
    for response in (_response(profileUserTypes=[]), _response(profileUserType={"type": "x"})):
        assert not {"usertype", "usersubtype", "profileusertypes"} & set(
            rules.profile_fields(response)
        )


def test_profile_user_types_are_serialised_in_java_hashmap_order():
    element = {"type": "t", "id": "i", "subType": "s", "name": "n", "code": "c"}
    fields = rules.profile_fields(_response(profileUserTypes=[element]))
    # String.hashCode buckets (of 16): code 3, name 8, subType 10, id 11, type 12
    assert fields["profileusertypes"] == (
        '[{"code":"c","name":"n","subType":"s","id":"i","type":"t"}]'
    )


def test_java_string_hash_matches_known_java_values():
    assert rules._java_string_hash("type") == 3575610
    assert rules._java_string_hash("id") == 3355
    assert rules._java_string_hash("name") == 3373707
    assert rules._java_string_hash("subType") == (-1868521062) & 0xFFFFFFFF
    assert rules._java_string_hash("") == 0
    assert rules._java_string_hash("\U0001f600") == 0xD83D * 31 + 0xDE00  # UTF-16 code units


def test_java_hashmap_keeps_insertion_order_within_a_bucket():
    # "Aa" and "BB" have the same String.hashCode (2112)
    assert list(rules._java_hashmap_order({"BB": 1, "Aa": 2})) == ["BB", "Aa"]
    assert list(rules._java_hashmap_order({"Aa": 2, "BB": 1})) == ["Aa", "BB"]


def test_java_hashmap_table_grows_past_twelve_entries():
    twelve = {c: 0 for c in "abcdefghijkp"}  # 16 buckets: "p" (112) lands in bucket 0
    assert list(rules._java_hashmap_order(twelve)) == list("pabcdefghijk")
    thirteen = {c: 0 for c in "abcdefghijklp"}  # 32 buckets: "p" lands in bucket 16
    assert list(rules._java_hashmap_order(thirteen)) == list("abcdefghijklp")


@pytest.mark.parametrize(
    ("response", "field"),
    [
        (_response(rootOrg="Org"), "rootOrg"),
        (_response(framework=["x"]), "framework"),
        (_response(framework={"board": "B"}), "framework.board"),
        (_response(userLocations={"type": "state"}), "userLocations"),
        (_response(userLocations=["state"]), "userLocations[0]"),
        (_response(userLocations=[{"type": 5}]), "userLocations[0].type"),
        (_response(profileUserTypes=["teacher"]), "profileUserTypes[0]"),
        (_response(profileUserTypes=[{"type": 1}]), "profileUserTypes[0].type"),
    ],
)
def test_wrongly_typed_profile_parts_are_invalid_naming_the_field(response, field):
    with pytest.raises(InvalidEvent) as exc:
        rules.profile_fields(response)
    assert field in exc.value.reason


# --------------------------------------------------------------------------- events


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{nope", "invalid_json"),
        (b"\xff{}", "UTF-8"),
        (b"[1]", "JSON object"),
        (b"null", "JSON object"),
        (_raw(_audit(object=["user-x"])), "object"),
        (_raw(_audit(edata=["Update"])), "edata"),
        (_raw(_audit(edata={"state": 5})), "edata.state"),
        (_raw(_audit(context="ctx")), "context"),
        (_raw(_audit(context={"pdata": "p"})), "context.pdata"),
        (_raw(_audit(context={"pdata": {"pid": 7}})), "context.pdata.pid"),
        (_raw(_audit(context={"cdata": {"type": "UserRole"}})), "context.cdata"),
        (_raw(_audit(context={"cdata": ["UserRole"]})), "context.cdata[0]"),
        (_raw(_audit(context={"cdata": [{"type": "X"}, {"id": "x"}]})), "context.cdata[1].type"),
        (_raw(_audit(context={"cdata": [{"type": None, "id": "x"}]})), "context.cdata[0].type"),
        (_raw(_audit(context={"cdata": [{"type": "UserRole", "id": 3}]})), "context.cdata[0].id"),
    ],
)
def test_malformed_events_are_invalid_with_a_reason_naming_the_field(raw, field):
    with pytest.raises(InvalidEvent) as exc:
        rules.parse_event(raw)
    assert field in exc.value.reason


@pytest.mark.parametrize(
    ("doc", "kind"),
    [
        (_audit(object=None), "not-a-user"),
        (_audit(object={"id": "u"}), "not-a-user"),
        (_audit(object={"id": "", "type": "User"}), "not-a-user"),
        (_audit(object={"id": 42, "type": "User"}), "not-a-user"),
        (_audit(object={"id": "u", "type": ""}), "not-a-user"),
        (_audit(object={"id": "u", "type": "Content"}), "not-a-user"),
        (_audit(edata={}), "no-state"),
        (_audit(edata={"state": None}), "no-state"),
        (_audit(edata=None), "no-state"),
        (_audit(edata={"state": "Login"}), "unsupported-state"),
        (_audit(edata={"state": "Deleted"}), "unsupported-state"),
        (_audit(context={"pdata": {"pid": "sunbird.app"}}), "no-data"),
        (_audit(context={"cdata": [{"type": "SignupType", "id": "Google"}]}), "no-data"),
        (_audit(context={"pdata": {"pid": "Learner-Service"}}), "no-data"),
    ],
)
def test_messages_for_other_jobs_are_skipped_with_a_kind(doc, kind):
    result = rules.parse_event(_raw(doc))
    assert isinstance(result, rules.Skipped) and result.kind == kind
    assert result.reason


def test_user_type_and_states_compare_ignoring_case():
    for state in ("create", "CREATED", "update", "UpDaTeD"):
        doc = _audit(object={"id": "u", "type": "USER"}, edata={"state": state})
        event = rules.parse_event(_raw(doc))
        assert isinstance(event, rules.AuditUser) and event.state == state


def test_delete_states_are_accepted_only_when_configured():
    doc = _raw(_audit(edata={"state": "deleted"}))
    cfg = rules.RulesConfig(accept_delete=True)
    event = rules.parse_event(doc, cfg)
    assert isinstance(event, rules.AuditUser) and event.state == "deleted"
    assert isinstance(rules.parse_event(doc), rules.Skipped)


def test_unsupported_state_is_skipped_before_cdata_is_looked_at():
    doc = _audit(edata={"state": "Login"}, context={"cdata": ["broken"]})
    result = rules.parse_event(_raw(doc))
    assert isinstance(result, rules.Skipped) and result.kind == "unsupported-state"


def test_registered_producer_is_case_sensitive_and_configurable():
    doc = _raw(_audit(context={"pdata": {"pid": "userorg-service"}}))
    assert isinstance(rules.parse_event(doc), rules.Skipped)
    event = rules.parse_event(doc, rules.RulesConfig(regd_pid="userorg-service"))
    assert isinstance(event, rules.AuditUser) and event.registered and event.general == {}


def test_mid_is_optional_and_only_kept_when_a_string():
    event = rules.parse_event(_raw(_audit(mid=12)))
    assert isinstance(event, rules.AuditUser) and event.mid is None


# --------------------------------------------------------------------------- general info


def test_general_info_signup_and_role_from_cdata():
    cdata = [{"type": "signuptype", "id": "self"}, {"type": "USERROLE", "id": "Teacher [x]"}]
    assert rules.general_info(cdata) == {
        "usersignintype": "Self-Signed-In",
        "userlogintype": "Teacher [x]",
    }
    assert rules.general_info(None) == {}
    assert rules.general_info([]) == {}


def test_general_info_last_matching_element_decides():
    cdata = [{"type": "SignupType", "id": "google"}, {"type": "SignupType", "id": "sso"}]
    assert rules.general_info(cdata) == {"usersignintype": "Validated"}
    cdata = [{"type": "SignupType", "id": "sso"}, {"type": "SignupType", "id": "other"}]
    assert rules.general_info(cdata) == {}
    roles = [{"type": "UserRole", "id": "a"}, {"type": "UserRole", "id": "b"}]
    assert rules.general_info(roles) == {"userlogintype": "b"}


def test_general_info_list_membership_is_case_sensitive():
    assert rules.general_info([{"type": "SignupType", "id": "Google"}]) == {}
    assert rules.general_info([{"type": "SignupType", "id": "SSO"}]) == {}
    assert rules.general_info([{"type": "SignupType"}]) == {}


def test_general_info_uses_configured_types_and_keys():
    cfg = rules.RulesConfig(
        self_signin_types=("x",), validated_types=("x", "y"), self_signin_key="S", valid_key="V"
    )
    assert rules.general_info([{"type": "SignupType", "id": "x"}], cfg) == {"usersignintype": "V"}
    assert rules.general_info([{"type": "SignupType", "id": "google"}], cfg) == {}


def test_user_role_without_id_is_written_empty_like_sunbirds_null():
    assert rules.general_info([{"type": "UserRole"}]) == {"userlogintype": ""}


# --------------------------------------------------------------------------- plan / redis model


def test_registered_event_without_read_result_is_a_programming_error():
    with pytest.raises(ValueError, match="user-read"):
        rules.plan(_accepted("v2_event_01_user-1_update_learner_google.json"), None)


def test_general_info_wins_over_profile_fields_on_a_clash():
    event = rules.AuditUser("u", "Update", True, {"firstname": "G"}, None)
    write = rules.plan(event, rules.Profile({"firstname": "P", "state": None}))
    assert isinstance(write, rules.Write)
    assert write.hset == {"firstname": "G", "state": ""}
    # "state" is in the write (as ""), so it is not a stale field
    assert write.delete_if_stale == (
        "district",
        "block",
        "cluster",
        "schooludisecode",
        "schoolname",
    )


def test_non_registered_event_ignores_read_result_and_deletes_nothing():
    event = rules.AuditUser("u", "Update", False, {"userlogintype": "t"}, None)
    write = rules.plan(event, rules.Profile({"firstname": "P"}))
    assert write == rules.Write("user:u", {"userlogintype": "t"}, ())


def test_custom_removable_fields_are_used():
    cfg = rules.RulesConfig(removable_fields=("state", "location"))
    event = rules.AuditUser("u", "Update", True, {}, None)
    write = rules.plan(event, rules.Profile({"state": "S"}), cfg)
    assert isinstance(write, rules.Write) and write.delete_if_stale == ("location",)


def test_stale_fields_are_only_the_non_empty_current_ones():
    write = rules.Write("user:u", {"firstname": "A"}, ("state", "district", "block", "cluster"))
    existing = {"state": "S", "district": "", "cluster": "C", "board": "B"}
    assert rules.stale_fields(existing, write) == ["state", "cluster"]
    assert rules.stale_fields({}, write) == []


def test_apply_deletes_stale_then_merges_and_leaves_other_fields():
    write = rules.Write("user:u", {"firstname": "A", "block": "B2"}, ("state", "district"))
    existing = {"state": "S", "district": "", "block": "B1", "board": "old", "firstname": "Z"}
    after = rules.apply(existing, write)
    assert after == {"district": "", "block": "B2", "board": "old", "firstname": "A"}
    assert existing["state"] == "S"  # the input is not modified


# --------------------------------------------------------------------------- value codec


def test_gson_json_is_compact_html_safe_and_keeps_non_ascii_raw():
    value = ["a<b>", "x&y", "k=v", "it's", "ಕನ್ನಡ", 'q"uote', "\u2028"]
    assert rules.gson_json(value) == (
        '["a\\u003cb\\u003e","x\\u0026y","k\\u003dv","it\\u0027s","ಕನ್ನಡ","q\\"uote","\\u2028"]'
    )
    assert rules.gson_json([]) == "[]"


def test_gson_json_drops_nulls_in_maps_but_not_in_lists():
    assert rules.gson_json({"a": None, "b": [None, {"c": None, "d": 1}]}) == '{"b":[null,{"d":1}]}'
    assert rules.gson_json([True, False, 3]) == "[true,false,3]"


def test_stringify_escapes_brackets_only_in_strings():
    assert rules.stringify(
        {"s": "[a] <b>", "n": None, "l": ["[x]"], "m": {"k": "<"}, "b": True, "i": 2}
    ) == {
        "s": "\\[a\\] <b>",
        "n": "",
        "l": '["[x]"]',
        "m": '{"k":"\\u003c"}',
        "b": "true",
        "i": "2",
    }


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("<>&='[]\"\\\u2028"))
)
JSON_LISTS = st.recursive(
    st.lists(JSON_SCALARS), lambda inner: st.lists(inner | JSON_SCALARS), max_leaves=20
)
ANY_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(JSON_LISTS)
def test_gson_json_of_a_list_round_trips_through_json_loads(value):
    assert json.loads(rules.gson_json(value)) == value


@given(st.dictionaries(st.text(), st.text() | st.integers() | st.none()))
def test_gson_json_of_a_map_round_trips_without_its_nulls(value):
    assert json.loads(rules.gson_json(value)) == {k: v for k, v in value.items() if v is not None}


@given(st.text())
def test_stringify_escapes_every_bracket_of_a_string_reversibly(value):
    out = rules.stringify({"k": value})["k"]
    assert all(out[i - 1] == "\\" for i, c in enumerate(out) if c in "[]")
    assert out.replace("\\[", "[").replace("\\]", "]") == value


@given(JSON_LISTS)
def test_stringify_leaves_brackets_of_json_lists_unescaped(value):
    out = rules.stringify({"k": value})["k"]
    assert out == rules.gson_json(value)
    assert out.startswith("[") and out.endswith("]")


@given(st.dictionaries(st.text(), ANY_VALUES))
def test_stringify_always_returns_strings_for_the_same_fields(fields):
    out = rules.stringify(fields)
    assert list(out) == list(fields)
    assert all(isinstance(v, str) for v in out.values())


@given(
    st.lists(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("<>&='\"\\\u2028")))
)
def test_gson_json_fast_path_for_string_lists_matches_the_general_encoder(value):
    assert rules.gson_json(value) == rules._gson_json_general(value)
