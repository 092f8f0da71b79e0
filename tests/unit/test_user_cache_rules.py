"""user-cache-updater rules on the project's own users (tests/data/usercache) and value encoding.

The rules are described in ``docs/flows/user-cache-updater.md``. Cases ``T1``-``T3`` are
Sunbird's three user-cache tests (all information through the user-read API; two producers;
blocked and unknown users) expressed with our own users and user-read answers; the expected
hashes in ``tests/data/usercache/expected_test*.json`` were worked out by hand. Case group ``L``
(Sunbird's Cassandra-era cases L01-L15) maps our own user-table rows the way the Cassandra
source does. Sunbird's own files run in ``tests/conformance/test_user_cache_rules.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lernflow.flows.skipped import Skipped
from lernflow.flows.user_cache_updater import rules
from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.java import gson_json
from lernflow.sources import user_rows
from lernflow.sources.sunbird_users import USER_COLUMNS
from tests.paths import DATA

FX = DATA / "usercache"
EVENTS: dict[str, Any] = json.loads((FX / "events.json").read_text())
ANSWERS: dict[str, Any] = json.loads((FX / "user_read.json").read_text())
TEST1 = json.loads((FX / "expected_test1.json").read_text())
TEST2 = json.loads((FX / "expected_test2.json").read_text())
TEST3 = json.loads((FX / "expected_test3.json").read_text())


def _event(name: str) -> rules.AuditUser | Skipped:
    return rules.parse_event(json.dumps(EVENTS[name]).encode())


def _accepted(name: str) -> rules.AuditUser:
    event = _event(name)
    assert isinstance(event, rules.AuditUser)
    return event


def _read(name: str, user_id: str) -> rules.Profile | rules.Blocked:
    return rules.parse_user_read(json.dumps(ANSWERS[name]).encode(), user_id)


def _profile(name: str) -> rules.Profile:
    info = _read(name, "u")
    assert isinstance(info, rules.Profile)
    return info


def _process(
    store: dict[str, dict[str, str]], event_name: str, answer: str | None
) -> rules.Write | Skipped:
    """One event through the rules, as the flow does: parse, read if registered, plan, apply."""
    event = _event(event_name)
    if isinstance(event, Skipped):
        return event
    info = _read(answer, event.user_id) if event.registered and answer else None
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


# --------------------------------------------------------------------------- case T1


def _run_test1() -> tuple[dict[str, dict[str, str]], list[rules.Write | Skipped]]:
    store: dict[str, dict[str, str]] = {}
    outcomes = [_process(store, s["event"], s["answer"]) for s in TEST1["events_in_order"]]
    return store, outcomes


def test_t1_final_hashes_equal_the_expected_full_hashes():
    store, _ = _run_test1()
    for key, expected in TEST1["keys"].items():
        if expected is None:
            assert key not in store, key  # unsupported state: never written
        else:
            assert store[key] == expected, key
    assert set(store) == {k for k, v in TEST1["keys"].items() if v is not None}


def test_t1_counts_seven_writes_and_two_skips_of_the_right_kinds():
    _, outcomes = _run_test1()
    for step, outcome in zip(TEST1["events_in_order"], outcomes, strict=True):
        if step["outcome"] == "write":
            assert isinstance(outcome, rules.Write), step
        else:
            assert isinstance(outcome, Skipped), step
            assert step["outcome"] == f"skip:{outcome.kind}"
    assert sum(isinstance(o, rules.Write) for o in outcomes) == 7
    assert isinstance(outcomes[7], Skipped) and "Archived" in outcomes[7].reason


def test_t1_content_object_event_is_not_a_user():
    result = _event("t1_7_content_object")
    assert isinstance(result, Skipped) and result.kind == "not-a-user"


def test_t1_unsupported_state_event_is_skipped():
    result = _event("t1_8_learner07_unsupported_state")
    assert isinstance(result, Skipped) and result.kind == "unsupported-state"


def test_t1_events_parse_to_user_id_state_producer_and_signin_type():
    e1 = _accepted("t1_1_learner01_update_google")
    assert e1 == rules.AuditUser(
        user_id="lf-learner-01",
        state="Update",
        registered=True,
        general={"usersignintype": "Self-Signed-In"},
        mid="LF.t1.1",
    )
    e2 = _accepted("t1_2_merged_update_no_signup")
    assert (e2.user_id, e2.registered, e2.general) == ("lf-learner-merged", True, {})
    e6 = _accepted("t1_6_learner05_created_sso")
    assert (e6.state, e6.general) == ("Created", {"usersignintype": "Validated"})


def test_t1_registered_event_deletes_only_the_removable_fields_the_profile_lacks():
    for step in TEST1["events_in_order"]:
        event = _event(step["event"])
        if not isinstance(event, rules.AuditUser):
            continue
        write = rules.plan(event, _read(step["answer"], event.user_id))
        assert isinstance(write, rules.Write)
        assert write.key == f"user:{event.user_id}"
        expected = TEST1["stale_candidates"].get(write.key, [])
        assert list(write.delete_if_stale) == expected, write.key


def test_t1_bracketed_names_are_escaped_but_json_lists_are_not():
    write = rules.plan(
        _accepted("t1_9_learner10_update_google_brackets"),
        _read("ok_brackets", "lf-learner-10"),
    )
    assert isinstance(write, rules.Write)
    assert write.hset["block"] == "Riverside\\]"
    assert write.hset["schoolname"] == "\\[Pilot\\] Hilltop School"
    assert write.hset["language"] == '["English","Marathi"]'
    assert (
        write.hset["profileusertypes"] == '\\[{"type":"administrator"}\\]'
    )  # null subType dropped
    assert write.hset["usersubtype"] == ""


# --------------------------------------------------------------------------- case T2


def test_t2_other_producer_merges_userlogintype_and_keeps_every_previous_field():
    store: dict[str, dict[str, str]] = {}
    step1, step2 = TEST2["step1"], TEST2["step2"]
    first = _process(store, step1["event"], step1["answer"])
    assert isinstance(first, rules.Write)
    assert store["user:lf-learner-01"] == step1["hash"]
    assert "userlogintype" not in store["user:lf-learner-01"]
    second = _process(store, step2["event"], step2["answer"])
    assert second == rules.Write("user:lf-learner-01", step2["hset"], ())
    assert store["user:lf-learner-01"] == step2["hash"]


def test_t2_other_producer_event_is_not_registered():
    event = _accepted("t2_learner01_app_userrole_teacher")
    assert event.registered is False
    assert event.general == {"userlogintype": "teacher"}
    expected = rules.Write("user:lf-learner-01", {"userlogintype": "teacher"}, ())
    assert rules.plan(event, None) == expected


# --------------------------------------------------------------------------- case T3


def test_t3_blocked_user_without_cdata_writes_nothing():
    step = TEST3["sequence"][1]
    event = _accepted(step["event"])
    info = _read(step["answer"], event.user_id)
    assert info == rules.Blocked("lf-learner-merged")
    result = rules.plan(event, info)
    assert isinstance(result, Skipped) and result.kind == "no-data"
    assert step["outcome"] == "skip:no-data"


def test_t3_resource_not_found_is_invalid_with_sunbirds_message():
    step = TEST3["sequence"][2]
    event = _accepted(step["event"])
    with pytest.raises(InvalidEvent) as exc:
        _read(step["answer"], event.user_id)
    assert exc.value.reason.startswith(TEST3["parked_reason_starts"])
    assert "RESOURCE_NOT_FOUND" in exc.value.reason
    assert "USER_NOT_FOUND" in exc.value.reason


def test_t3_blocked_user_with_cdata_still_deletes_removable_fields():
    store: dict[str, dict[str, str]] = {}
    _process(store, "t1_1_learner01_update_google", "ok_anaya")
    before = dict(store["user:lf-learner-01"])
    assert before == TEST1["keys"]["user:lf-learner-01"]
    event = _accepted("t1_1_learner01_update_google")
    write = rules.plan(event, _read("blocked", "lf-learner-01"))
    assert write == rules.Write(
        "user:lf-learner-01", {"usersignintype": "Self-Signed-In"}, rules.REMOVABLE_FIELDS
    )
    assert rules.stale_fields(before, write) == list(rules.REMOVABLE_FIELDS)
    after = rules.apply(before, write)
    assert not set(rules.REMOVABLE_FIELDS) & set(after)
    assert after == {k: v for k, v in before.items() if k not in rules.REMOVABLE_FIELDS}


# --------------------------------------------------------------------------- case group L


CASSANDRA = json.loads((FX / "cassandra_expected.json").read_text())
TABLES: dict[str, list[dict[str, Any]]] = json.loads((FX / "cassandra_tables.json").read_text())


def _table_profile(user_id: str) -> rules.Profile | None:
    """The profile the Cassandra source reads for ``user_id`` from our rows (None: no user row).

    Tables are modelled as lists of rows: absent columns read as null, clustering columns sort
    ascending, deleted memberships are left out (what ``flows.user_cache_updater.profiles`` asks Cassandra for).
    """
    row = next((r for r in TABLES["user"] if r["id"] == user_id), None)
    if row is None:
        return None
    user = {column: row.get(column) for column in USER_COLUMNS}
    custodian = next(
        r["value"] for r in TABLES["system_settings"] if r["id"] == "custodianRootOrgId"
    )
    wants_declarations, wants_orgs = user_rows.needs(user_rows.UserRows(user), custodian)
    orgs = sorted(
        r["organisationid"]
        for r in TABLES["user_organisation"]
        if wants_orgs and r["userid"] == user_id and not r.get("isdeleted")
    )
    declarations = sorted(
        (r for r in TABLES["user_declarations"] if wants_declarations and r["userid"] == user_id),
        key=lambda r: (r["orgid"], r["persona"]),
    )
    lookups = user_rows.Lookups(
        organisations={r["id"]: r for r in TABLES["organisation"]},
        locations={r["id"]: r for r in TABLES["location"]},
    )
    rows = user_rows.UserRows(user, tuple(orgs), tuple(declarations))
    return rules.Profile(rules.profile_fields(user_rows.response_from_rows(rows, lookups)))


def test_l01_l15_user_tables_give_the_expected_hashes():
    store: dict[str, dict[str, str]] = json.loads((FX / "cassandra_preseed.json").read_text())
    skipped: dict[str, str] = {}
    parked: list[str] = []
    for name in CASSANDRA["events_in_order"]:
        event = _event(name)
        if isinstance(event, Skipped):
            skipped[name] = event.kind
            continue
        info = _table_profile(event.user_id) if event.registered else None
        if event.registered and info is None:
            parked.append(name)  # the flow parks it and writes only the sign-in fields
            event = rules.AuditUser(event.user_id, event.state, False, event.general, event.mid)
            if not event.general:
                continue
        write = rules.plan(event, info)
        assert isinstance(write, rules.Write), name
        store[write.key] = rules.apply(store.get(write.key, {}), write)
    assert skipped == CASSANDRA["skipped"]
    assert parked == list(CASSANDRA["parked"])
    expected = {k: v for k, v in CASSANDRA["keys"].items() if v is not None}
    for key, hash_ in expected.items():
        assert store.get(key) == hash_, key
    assert set(store) == set(expected)


# --------------------------------------------------------------------------- user-read answers


def test_other_client_errors_and_ok_without_response_are_invalid():
    for name in ("client_error_other", "ok_without_response"):
        with pytest.raises(InvalidEvent) as exc:
            _read(name, "lf-learner-09")
        assert exc.value.reason.startswith(
            "User Read API does not have details for user: lf-learner-09"
        )
    with pytest.raises(InvalidEvent, match="USER_ACCOUNT_BLOCKED"):
        _read("client_error_other", "lf-learner-09")


def test_full_profile_fields_keep_python_types_before_stringify():
    fields = _profile("ok_anaya").fields
    assert fields["language"] == ["English", "Marathi"]
    assert fields["phone"] is None and fields["email"] is None  # masked values are not used
    assert fields["board"] == "LF State Board" and fields["framework"] == "lf_k12"
    assert fields["grade"] == ["Class 6", "Class 7"]
    assert fields["medium"] == ["English", "ಕನ್ನಡ"]
    assert fields["usertype"] == "teacher,parent,administrator,other"
    assert fields["usersubtype"] == "mentor,hm"
    assert fields["profileusertypes"] == (
        '[{"subType":"mentor","type":"teacher"},{"type":"parent"},'
        '{"subType":"hm","type":"administrator"},{"subType":"hm","type":"teacher"},'
        '{"type":"other"}]'
    )


def test_registered_event_without_read_result_is_a_programming_error():
    with pytest.raises(ValueError, match="user-read"):
        rules.plan(_accepted("t1_1_learner01_update_google"), None)


@pytest.mark.parametrize(
    ("body", "seen"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"<html>502</html>", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
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
        (b"{nope", "not valid JSON"),
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
    assert isinstance(result, Skipped) and result.kind == kind
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
    assert isinstance(rules.parse_event(doc), Skipped)


def test_unsupported_state_is_skipped_before_cdata_is_looked_at():
    doc = _audit(edata={"state": "Login"}, context={"cdata": ["broken"]})
    result = rules.parse_event(_raw(doc))
    assert isinstance(result, Skipped) and result.kind == "unsupported-state"


def test_registered_producer_is_case_sensitive_and_configurable():
    doc = _raw(_audit(context={"pdata": {"pid": "userorg-service"}}))
    assert isinstance(rules.parse_event(doc), Skipped)
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
    assert gson_json(value) == (
        '["a\\u003cb\\u003e","x\\u0026y","k\\u003dv","it\\u0027s","ಕನ್ನಡ","q\\"uote","\\u2028"]'
    )
    assert gson_json([]) == "[]"


def test_gson_json_drops_nulls_in_maps_but_not_in_lists():
    assert gson_json({"a": None, "b": [None, {"c": None, "d": 1}]}) == '{"b":[null,{"d":1}]}'
    assert gson_json([True, False, 3]) == "[true,false,3]"


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
    assert json.loads(gson_json(value)) == value


@given(st.dictionaries(st.text(), st.text() | st.integers() | st.none()))
def test_gson_json_of_a_map_round_trips_without_its_nulls(value):
    assert json.loads(gson_json(value)) == {k: v for k, v in value.items() if v is not None}


@given(st.text())
def test_stringify_escapes_every_bracket_of_a_string_reversibly(value):
    out = rules.stringify({"k": value})["k"]
    assert all(out[i - 1] == "\\" for i, c in enumerate(out) if c in "[]")
    assert out.replace("\\[", "[").replace("\\]", "]") == value


@given(JSON_LISTS)
def test_stringify_leaves_brackets_of_json_lists_unescaped(value):
    out = rules.stringify({"k": value})["k"]
    assert out == gson_json(value)
    assert out.startswith("[") and out.endswith("]")


@given(st.dictionaries(st.text(), ANY_VALUES))
def test_stringify_always_returns_strings_for_the_same_fields(fields):
    out = rules.stringify(fields)
    assert list(out) == list(fields)
    assert all(isinstance(v, str) for v in out.values())
