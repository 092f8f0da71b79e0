"""Conformance: certificate-pre-processor's pure rules on Sunbird's own fixture files.

The rules are described in docs/flows/certificate-pre-processor.md; the same cases on our own
data are in tests/unit/test_certificate_pre_processor_rules.py (PP-1..PP-4, PP-T1, PP-D1..D4).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from lernflow.flows.certificate_pre_processor import rules
from lernflow.flows.skipped import Skipped
from lernflow.kernel.errors import InvalidEvent
from tests.conformance.conftest import SUNBIRD_FIXTURES

FX = SUNBIRD_FIXTURES / "certificates"
COURSE = "do_11309999837886054415"
BATCH = "0131000245281587206"
COMPLETED = datetime(2021, 5, 27)  # naive UTC, as the Cassandra driver returns timestamps
ISSUER = {
    "name": "Gujarat Council of Educational Research and Training",
    "url": "https://gcert.gujarat.gov.in/gcert/",
}
SIGNATORIES = [
    {
        "image": "https://cdn.pixabay.com/photo/2014/11/09/08/06/signature-523237__340.jpg",
        "name": "CEO Gujarat",
        "id": "CEO",
        "designation": "CEO",
    }
]
# Sunbird's pre-processor test setup: the content cache holds content_001 as "selfAssess" and the job is
# configured with ["selfAssess"].
CFG = rules.PreConfig(
    supported_content_types=("selfAssess",), cert_domain_url="https://dev.sunbirded.org"
)
CACHE_CONTENT_001 = '{"identifier":"content_001","contentType": "selfAssess"}'


def load(name: str) -> Any:
    return json.loads((FX / name).read_text())


def profile(name: str) -> dict[str, Any]:
    """``result.response`` of a user-read fixture."""
    response: dict[str, Any] = load(name)["result"]["response"]
    return response


def template_1() -> rules.Template:
    parsed = rules.templates({"template_svg_04-prad": load("pre_processor.TEMPLATE_1.json")})
    assert isinstance(parsed[0], rules.Template)
    return parsed[0]


# pre_processor.test.cql, "event 1": course_batch row of (do_11309999837886054415, 0131000245281587206)
CQL_EVENT_1_TEMPLATES = {
    "template_01_dev_001": {
        "criteria": '{"enrollment":{"status":2}, "assessment": {"score": {">=": 80}}}',
        "identifier": "template_01_dev_001",
        "url": "template-url.svg",
        "issuer": '{"name":"Gujarat Council of Educational Research and Training","publicKey":["7","8"],"url":"https://gcert.gujarat.gov.in/gcert/"}',
        "name": "Course Completion Certificate",
        "notifyTemplate": '{"subject":"Completion certificate","stateImgUrl":"https://sunbirddev.blob.core.windows.net/orgemailtemplate/img/File-0128212938260643843.png","regardsperson":"Chairperson","regards":"Minister of Gujarat","emailTemplateType":"defaultCertTemp"}',
        "signatoryList": '[{"image":"https://cdn.pixabay.com/photo/2014/11/09/08/06/signature-523237__340.jpg","name":"CEO Gujarat","id":"CEO","designation":"CEO"}]',
    }
}


def user001_row() -> dict[str, Any]:
    """pre_processor.test.cql "event 1": user_enrolments row of user001 (completedon = 2021-05-27)."""
    return {
        "userid": "user001",
        "courseid": COURSE,
        "batchid": BATCH,
        "active": True,
        "status": 2,
        "completedon": COMPLETED,
        "issued_certificates": [
            {
                "identifier": "certificateId",
                "lastIssuedOn": "2019-08-21",
                "name": "Course Completion Certificate",
                "token": "P4L3Y9",
            }
        ],
        "certificates": None,
        "progress": None,
    }


# pre_processor.test.cql "event 1": user_activity_agg of user001 (aggregates column only)
USER001_AGG: dict[str, float] = {}
USER001_AGGREGATES = {"score:content_001": 1.0, "max_score:content_001": 1.0}


def types_for(aggregates: dict[str, float]) -> dict[str, str | None]:
    """Content types as the flow resolves them: content cache first (content_001 cached)."""
    cache = {"content_001": CACHE_CONTENT_001}
    return {
        cid: rules.content_type(rules.normalise_content_metadata(cache.get(cid)))
        for cid in rules.assessment_content_ids(aggregates)
    }


def run(
    request: rules.IssueRequest,
    user_id: str,
    template: rules.Template,
    row: dict[str, Any] | None,
    aggregates: dict[str, float],
    user: dict[str, Any] | None,
    raw_course: str,
    cfg: rules.PreConfig = CFG,
) -> rules.Decision:
    """The flow's per-(user, template) decision (rules.decide_template) over already-read inputs."""
    reads = rules.LearnerReads(row, aggregates, types_for(aggregates), user, raw_course)
    return rules.decide_template(
        request,
        user_id,
        template,
        reads,
        cfg,
        now_ms=1622111105836,
        mid="LMS.2f1e6a38-0d3c-4c8e-9a55-7b8f1f0b6d21",
    )


def event_1(**edata: object) -> bytes:
    doc = load("pre_processor.EVENT_1.json")
    doc["edata"].update(edata)
    return json.dumps(doc).encode()


def request_1(**edata: object) -> rules.IssueRequest:
    req = rules.parse_request(event_1(**edata))
    assert isinstance(req, rules.IssueRequest)
    return req


COURSE_NAME = load("pre_processor.CONTENT_1.json")["result"]["content"]["name"]


# -- request ---------------------------------------------------------------------------------
def test_fixture_request_parses():
    req = rules.parse_request((FX / "pre_processor.EVENT_1.json").read_bytes())
    assert req == rules.IssueRequest(
        BATCH, COURSE, ("user001",), True, "LP.1621833310477.429e795f-6d3e-4a11-8754-685984d62d10"
    )


def test_every_user_id_is_kept_in_order_and_once():
    req = request_1(userIds=["user001", "user002", "user001", "user003"])
    assert req.user_ids == ("user001", "user002", "user003")


@pytest.mark.parametrize("users", [None, []])
def test_a_request_without_users_is_rejected_with_a_reason(users):
    doc = load("pre_processor.EVENT_1.json")
    if users is None:
        del doc["edata"]["userIds"]
    else:
        doc["edata"]["userIds"] = users
    with pytest.raises(InvalidEvent, match="userIds is missing or empty"):
        rules.parse_request(json.dumps(doc).encode())


def test_other_actions_are_skipped_and_the_action_is_case_insensitive():
    skipped = rules.parse_request(event_1(action="batch-enrolment-update"))
    assert isinstance(skipped, Skipped)
    assert skipped.kind == "other-action"
    doc = load("pre_processor.EVENT_1.json")
    del doc["edata"]["action"]
    assert isinstance(rules.parse_request(json.dumps(doc).encode()), Skipped)
    assert isinstance(rules.parse_request(event_1(action="ISSUE-Certificate")), rules.IssueRequest)


def test_re_issue_defaults_to_false():
    doc = load("pre_processor.EVENT_1.json")
    del doc["edata"]["reIssue"]
    req = rules.parse_request(json.dumps(doc).encode())
    assert isinstance(req, rules.IssueRequest)
    assert req.re_issue is False


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"eid": "BE_JOB_REQUEST"}', "edata is missing"),
        (event_1(batchId=""), "edata.batchId must be a non-empty string"),
        (event_1(courseId=None), "edata.courseId is missing"),
        (event_1(userIds="user001"), "edata.userIds must be a list"),
        (event_1(userIds=["user001", 7]), r"edata.userIds\[1\] must be a non-empty string"),
        (event_1(reIssue="true"), "edata.reIssue must be a boolean"),
        (event_1(action=1), "edata.action must be a string"),
    ],
)
def test_malformed_requests_are_invalid_events(raw, reason):
    with pytest.raises(InvalidEvent, match=reason):
        rules.parse_request(raw)


# -- templates -------------------------------------------------------------------------------
def test_fixture_template_parses():
    t = template_1()
    assert t.identifier == "template_svg_04-prad"
    assert t.name == "Course Completion Certificate"
    assert t.criteria == {"enrollment": {"status": 2}, "assessment": {"score": {">=": 50}}}
    assert t.issuer == ISSUER
    assert t.signatory_list == SIGNATORIES
    assert t.additional_props == {
        "enrollment": ["completedOn"],
        "location": ["state", "district", "school"],
        "assessment": ["score"],
        "course": ["name"],
    }
    assert t.notify_template is None
    assert t.raw == load("pre_processor.TEMPLATE_1.json")


def test_cql_template_parses_with_its_notify_template():
    (t,) = rules.templates(CQL_EVENT_1_TEMPLATES)
    assert isinstance(t, rules.Template)
    assert t.issuer["publicKey"] == ["7", "8"]
    assert t.notify_template is not None
    assert t.notify_template["emailTemplateType"] == "defaultCertTemp"
    assert t.additional_props == {}


def test_templates_come_in_identifier_order_one_entry_per_key():
    good = CQL_EVENT_1_TEMPLATES["template_01_dev_001"]
    stored = {
        "t_b": {**good, "identifier": "t_b"},
        "t_c": {**good, "url": "template.png"},
        "t_a": {**good, "identifier": "t_a"},
    }
    out = rules.templates(stored)
    assert [getattr(t, "identifier", None) for t in out] == ["t_a", "t_b", None]
    assert isinstance(out[2], rules.Rejected)


def test_pp_d1_no_templates_means_nothing_to_do():
    # pre_processor.test.cql: course_batch (course_002, batch_002) has cert_templates = {}
    assert rules.templates({}) == []
    assert rules.templates(None) == []


@pytest.mark.parametrize("url", ["template.png", "TEMPLATE.SVG", None])
def test_non_svg_templates_are_rejected_visibly_but_not_as_faults(url):
    raw = dict(CQL_EVENT_1_TEMPLATES["template_01_dev_001"])
    if url is None:
        del raw["url"]
    else:
        raw["url"] = url
    (out,) = rules.templates({"t": raw})
    assert isinstance(out, rules.Rejected)
    assert out.step == "template"
    assert not out.fatal
    assert ".svg" in out.reason


@pytest.mark.parametrize(
    ("criteria", "what"),
    [
        (None, "criteria is missing or empty"),
        ("{}", "criteria is missing or empty"),
        ('{"score": 80}', "criteria has none of enrollment, assessment, user, users"),
        ("not json", "criteria is not valid JSON"),
        ("[1]", "criteria must be an object"),
        ('{"enrollment": 2}', "criteria.enrollment must be an object"),
    ],
)
def test_invalid_templates_are_fatal_rejections_naming_the_problem(criteria, what):
    raw = dict(CQL_EVENT_1_TEMPLATES["template_01_dev_001"])
    if criteria is None:
        del raw["criteria"]
    else:
        raw["criteria"] = criteria
    (out,) = rules.templates({"template_01_dev_001": raw}, batch_id=BATCH)
    assert isinstance(out, rules.Rejected)
    assert out.step == "template"
    assert out.fatal
    assert out.reason.startswith(
        f"Invalid template for batch : {BATCH} (template template_01_dev_001: "
    )
    assert what in out.reason


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        # Q17: lms-service writes the asset's signatory list into "issuer"
        ("issuer", json.dumps(SIGNATORIES), "issuer must be an object"),
        ("signatoryList", "{}", "signatoryList must be a list"),
        ("additionalProps", '{"enrollment": "completedOn"}', "additionalProps.enrollment"),
    ],
)
def test_badly_shaped_template_json_is_a_fatal_rejection(key, value, what):
    raw = {**CQL_EVENT_1_TEMPLATES["template_01_dev_001"], key: value}
    (out,) = rules.templates({"t": raw})
    assert isinstance(out, rules.Rejected)
    assert out.fatal
    assert what in out.reason


def test_q5_user_alone_and_users_alone_both_pass_validation():
    base = CQL_EVENT_1_TEMPLATES["template_01_dev_001"]
    for criteria in ('{"user": {"rootOrgId": "Org001"}}', '{"users": {"rootOrgId": "x"}}'):
        (out,) = rules.templates({"t": {**base, "criteria": criteria}})
        assert isinstance(out, rules.Template), criteria


def test_q5_users_is_never_evaluated_and_user_is():
    base = CQL_EVENT_1_TEMPLATES["template_01_dev_001"]
    (users,) = rules.templates({"t": {**base, "criteria": '{"users": {"rootOrgId": "x"}}'}})
    (user,) = rules.templates({"t": {**base, "criteria": '{"user": {"rootOrgId": "x"}}'}})
    assert isinstance(users, rules.Template)
    assert isinstance(user, rules.Template)
    p = profile("pre_processor.USER_1.json")
    assert rules.check_user(users, p) is None
    rejected = rules.check_user(user, p)
    assert rejected is not None
    assert rejected.step == "user"
    assert "rootOrgId" in rejected.reason


def test_q5_a_users_only_template_ends_without_a_completion_date():
    base = CQL_EVENT_1_TEMPLATES["template_01_dev_001"]
    (t,) = rules.templates({"t": {**base, "criteria": '{"users": {"rootOrgId": "x"}}'}})
    assert isinstance(t, rules.Template)
    assert not rules.needs_enrolment(t)
    d = run(request_1(), "user001", t, None, {}, profile("pre_processor.USER_1.json"), "c")
    assert d.event is None
    assert d.rejected is not None
    assert d.rejected.step == "date"
    assert d.rejected.fatal


# -- PP-1..PP-4 and PP-D2..D4 ----------------------------------------------------------------
def expected_pp1_event() -> dict[str, Any]:
    """The documented complete generate event (TEMPLATE_1's identifier, url and additionalProps)."""
    return {
        "actor": {"id": "Certificate Generator", "type": "System"},
        "eid": "BE_JOB_REQUEST",
        "edata": {
            "issuedDate": "2021-05-27",
            "data": [{"recipientName": "user name", "recipientId": "user001"}],
            "criteria": {"narrative": "Course Completion Certificate"},
            "svgTemplate": "https://sunbirddev.blob.core.windows.net/sunbird-content-dev/content/template_svg_04-prad/artifact/template-1.svg",
            "oldId": "certificateId",
            "templateId": "template_svg_04-prad",
            "userId": "user001",
            "orgId": "Org001",
            "issuer": ISSUER,
            "signatoryList": SIGNATORIES,
            "courseName": "test Course",
            "basePath": "https://dev.sunbirded.org/certs",
            "related": {
                "batchId": BATCH,
                "courseId": COURSE,
                "type": "Course Completion Certificate",
                "location": {"state": "Karnataka", "district": "BENGALURU URBAN SOUTH"},
                "enrollment": {"completedOn": 1622073600000},
                "assessment": {"score": {"content_001": 100.0}},
                "course": {"name": "test Course"},
            },
            "name": "Course Completion Certificate",
            "tag": BATCH,
        },
        "ets": 1622111105836,
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.learning.platform"}},
        "mid": "LMS.2f1e6a38-0d3c-4c8e-9a55-7b8f1f0b6d21",
        "object": {"id": "user001", "type": "GenerateCertificate"},
    }


def pp(user_fixture: str) -> rules.Decision:
    aggregates = rules.merged_aggregates(USER001_AGG, USER001_AGGREGATES)
    return run(
        request_1(),
        "user001",
        template_1(),
        user001_row(),
        aggregates,
        profile(user_fixture),
        COURSE_NAME,
    )


def test_pp_1_builds_the_documented_generate_event():
    d = pp("pre_processor.USER_1.json")
    assert d.rejected is None
    assert d.event == expected_pp1_event()
    assert list(d.event) == ["actor", "eid", "edata", "ets", "context", "mid", "object"]
    assert json.dumps(d.event) == json.dumps(expected_pp1_event())
    assert (d.user_id, d.template_id) == ("user001", "template_svg_04-prad")


@pytest.mark.parametrize(
    ("fixture", "name"),
    [
        ("pre_processor.USER_2_EMPTY_LASTNAME.json", "Rajesh"),
        ("pre_processor.USER_3_NULL_VALUE_LASTNAME.json", "Suresh"),
        ("pre_processor.USER_4_NULL_STRING_VALUE_LASTNAME.json", "Manju"),
    ],
)
def test_pp_2_to_4_recipient_name_drops_empty_null_and_null_string_last_names(fixture, name):
    d = pp(fixture)
    assert d.event is not None
    assert d.event["edata"]["data"][0]["recipientName"] == name
    assert "location" not in d.event["edata"]["related"]  # these users have no locations


def test_pp_t1_cql_template_with_threshold_80_issues_for_user001():
    (t,) = rules.templates(CQL_EVENT_1_TEMPLATES, batch_id=BATCH)
    assert isinstance(t, rules.Template)
    d = run(
        request_1(),
        "user001",
        t,
        user001_row(),
        rules.merged_aggregates(USER001_AGG, USER001_AGGREGATES),
        profile("pre_processor.USER_1.json"),
        COURSE_NAME,
    )
    assert d.event is not None
    edata = d.event["edata"]
    assert edata["svgTemplate"] == "template-url.svg"
    assert edata["related"] == {
        "batchId": BATCH,
        "courseId": COURSE,
        "type": "Course Completion Certificate",
    }
    assert edata["issuer"]["publicKey"] == ["7", "8"]


def test_pp_d2_enrolment_without_active_or_status_is_not_eligible():
    # pre_processor.test.cql "event 2": template "Course merit certificate" (status 2 only) and
    # the user002 row with only completedon set.
    raw = {
        "criteria": '{"enrollment":{"status":2}}',
        "url": "template-url.svg",
        "identifier": "template_01_dev_001",
        "issuer": '{"name":"Gujarat Council of Educational Research and Training","publicKey":["7","8"],"url":"https://gcert.gujarat.gov.in/gcert/"}',
        "name": "Course merit certificate",
        "signatoryList": CQL_EVENT_1_TEMPLATES["template_01_dev_001"]["signatoryList"],
    }
    (t,) = rules.templates({"template_01_dev_001": raw})
    assert isinstance(t, rules.Template)
    row = {
        "userid": "user002",
        "courseid": "do_11309999837886054416",
        "batchid": "0131000245281587207",
        "completedon": COMPLETED,
        "active": None,
        "status": None,
        "issued_certificates": None,
    }
    out = rules.check_enrolment(t, row, re_issue=False)
    assert out == rules.Rejected("enrollment", "enrolment is not active")
    out = rules.check_enrolment(t, {**row, "active": True}, re_issue=False)
    assert out == rules.Rejected("enrollment", "enrolment status 0 is not 2")


def test_pp_d3_int_agg_column_and_empty_issued_list_issue_without_old_id():
    # pre_processor.test.cql "event 3": course_003/batch_003, user003 active, status 2,
    # issued_certificates [], user_activity_agg with the int agg column only.
    base = CQL_EVENT_1_TEMPLATES["template_01_dev_001"]
    (t,) = rules.templates({"template_01_dev_001": {**base, "name": "Course merit certificate"}})
    assert isinstance(t, rules.Template)
    row = {
        "userid": "user003",
        "courseid": "course_003",
        "batchid": "batch_003",
        "active": True,
        "status": 2,
        "completedon": COMPLETED,
        "issued_certificates": [],
    }
    aggregates = rules.merged_aggregates({"score:content_001": 1, "max_score:content_001": 1}, {})
    req = rules.IssueRequest("batch_003", "course_003", ("user003",), False, None)
    d = run(req, "user003", t, row, aggregates, profile("pre_processor.USER_1.json"), "c3")
    assert d.event is not None
    assert d.event["edata"]["oldId"] == ""
    assert d.event["edata"]["tag"] == "batch_003"
    assert d.event["object"] == {"id": "user003", "type": "GenerateCertificate"}


def test_pp_d4_already_issued_by_name_and_not_a_re_issue_is_skipped():
    d = run(
        request_1(reIssue=False),
        "user001",
        template_1(),
        user001_row(),
        rules.merged_aggregates(USER001_AGG, USER001_AGGREGATES),
        profile("pre_processor.USER_1.json"),
        COURSE_NAME,
    )
    assert d.event is None
    assert d.rejected is not None
    assert d.rejected.step == "enrollment"
    assert "already issued" in d.rejected.reason
    assert not d.rejected.fatal


def test_several_user_ids_are_each_decided():
    req = request_1(userIds=["user001", "user003"])
    rows = {
        "user001": user001_row(),
        "user003": {**user001_row(), "userid": "user003", "issued_certificates": []},
    }
    decisions = [
        run(
            req,
            user,
            template_1(),
            rows[user],
            rules.merged_aggregates(USER001_AGG, USER001_AGGREGATES),
            profile("pre_processor.USER_1.json"),
            COURSE_NAME,
        )
        for user in req.user_ids
    ]
    assert [d.event["object"]["id"] for d in decisions if d.event] == ["user001", "user003"]
    assert [d.event["edata"]["oldId"] for d in decisions if d.event] == ["certificateId", ""]
    assert [d.event["edata"]["data"][0]["recipientId"] for d in decisions if d.event] == [
        "user001",
        "user003",
    ]


# -- enrolment -------------------------------------------------------------------------------
def test_no_enrolment_row_is_not_eligible():
    out = rules.check_enrolment(template_1(), None, re_issue=True)
    assert isinstance(out, rules.Rejected)
    assert out.step == "enrollment"
    assert not out.fatal


def test_dedup_is_by_name_case_insensitively():
    row = user001_row()
    row["issued_certificates"] = [{"identifier": "x1", "name": "COURSE completion CERTIFICATE"}]
    assert isinstance(rules.check_enrolment(template_1(), row, re_issue=False), rules.Rejected)
    out = rules.check_enrolment(template_1(), row, re_issue=True)
    assert isinstance(out, rules.EnrolmentOutcome)
    assert out.old_id == "x1"
    row["issued_certificates"] = [{"identifier": "x2", "name": "Other certificate"}]
    out = rules.check_enrolment(template_1(), row, re_issue=False)
    assert isinstance(out, rules.EnrolmentOutcome)
    assert out.old_id == ""


def test_re_issue_without_an_earlier_certificate_has_no_old_id():
    row = {**user001_row(), "issued_certificates": None}
    out = rules.check_enrolment(template_1(), row, re_issue=True)
    assert isinstance(out, rules.EnrolmentOutcome)
    assert out.old_id == ""
    assert out.issued_on == COMPLETED
    assert out.props == {"completedOn": COMPLETED}


def test_status_criteria_default_and_numeric_equality():
    base = CQL_EVENT_1_TEMPLATES["template_01_dev_001"]

    def with_enrollment(enrollment: str) -> rules.Template:
        (t,) = rules.templates({"t": {**base, "criteria": f'{{"enrollment": {enrollment}}}'}})
        assert isinstance(t, rules.Template)
        return t

    row = {**user001_row(), "issued_certificates": []}
    assert isinstance(
        rules.check_enrolment(with_enrollment('{"x": 1}'), row, False), rules.EnrolmentOutcome
    )
    assert isinstance(
        rules.check_enrolment(with_enrollment('{"status": 2.0}'), row, False),
        rules.EnrolmentOutcome,
    )
    out = rules.check_enrolment(with_enrollment('{"status": 1}'), row, False)
    assert isinstance(out, rules.Rejected)
    assert not out.fatal
    out = rules.check_enrolment(with_enrollment('{"status": "2"}'), row, False)
    assert isinstance(out, rules.Rejected)
    assert out.fatal
    assert "must be a number" in out.reason


def test_unknown_enrolment_column_in_additional_props_is_a_fatal_rejection():
    raw = {**load("pre_processor.TEMPLATE_1.json"), "additionalProps": '{"enrollment": ["nope"]}'}
    (t,) = rules.templates({"t": raw})
    assert isinstance(t, rules.Template)
    out = rules.check_enrolment(t, user001_row(), re_issue=True)
    assert isinstance(out, rules.Rejected)
    assert out.fatal
    assert "'nope'" in out.reason


def test_enrolment_props_are_read_by_lower_cased_column_and_become_json():
    raw = {
        **load("pre_processor.TEMPLATE_1.json"),
        "additionalProps": '{"enrollment": ["completedOn", "Progress", "issued_certificates"]}',
    }
    (t,) = rules.templates({"t": raw})
    assert isinstance(t, rules.Template)
    row = {**user001_row(), "progress": 100}
    outcome = rules.check_enrolment(t, row, re_issue=True)
    assert isinstance(outcome, rules.EnrolmentOutcome)
    assert outcome.props["Progress"] == 100
    event = rules.generate_event(
        request_1(),
        "user001",
        t,
        outcome,
        {},
        profile("pre_processor.USER_1.json"),
        "c",
        CFG,
        now_ms=1,
        mid="LMS.x",
    )
    enrollment = event["edata"]["related"]["enrollment"]
    assert enrollment["completedOn"] == 1622073600000
    assert enrollment["issued_certificates"][0]["token"] == "P4L3Y9"
    json.dumps(event)


def test_no_enrolment_criteria_passes_without_a_row():
    base = CQL_EVENT_1_TEMPLATES["template_01_dev_001"]
    (t,) = rules.templates({"t": {**base, "criteria": '{"assessment": {"score": {">=": 0}}}'}})
    assert isinstance(t, rules.Template)
    assert not rules.needs_enrolment(t)
    assert rules.needs_assessment(t)
    assert rules.check_enrolment(t, None, False) == rules.EnrolmentOutcome("", None, {})


# -- assessment ------------------------------------------------------------------------------
def assessed(score_criteria: object) -> rules.Template:
    base = CQL_EVENT_1_TEMPLATES["template_01_dev_001"]
    criteria = json.dumps({"enrollment": {"status": 2}, "assessment": {"score": score_criteria}})
    (t,) = rules.templates({"t": {**base, "criteria": criteria}})
    assert isinstance(t, rules.Template)
    return t


TWO_THIRDS = {"score:c1": 2.0, "max_score:c1": 3.0}  # 66.666...%
SELF = {"c1": "SelfAssess", "c2": "SelfAssess", "c3": "Course"}


@pytest.mark.parametrize(
    ("op", "threshold", "eligible"),
    [
        ("EQ", 80, True),
        ("eq", 80, True),
        ("=", 80, True),
        ("EQ", 79, False),
        (">", 79, True),
        (">", 80, False),
        ("<", 81, True),
        ("<", 80, False),
        (">=", 80, True),
        (">=", 81, False),
        ("<=", 80, True),
        ("<=", 79, False),
        ("ne", 79, True),
        ("ne", 80, False),
        ("!=", 79, True),
        ("!=", 80, False),
    ],
)
def test_every_operator(op, threshold, eligible):
    aggregates = {"score:c1": 4.0, "max_score:c1": 5.0}  # 80%
    out = rules.check_assessment(assessed({op: threshold}), aggregates, SELF, rules.PreConfig())
    if eligible:
        assert out == {"c1": 80.0}
    else:
        assert isinstance(out, rules.Rejected)
        assert out.step == "assessment"
        assert not out.fatal
        assert f"does not satisfy {op} {threshold}" in out.reason


def test_comparison_is_on_doubles():
    cfg = rules.PreConfig()
    out = rules.check_assessment(assessed({">=": 66}), TWO_THIRDS, SELF, cfg)
    assert isinstance(out, dict)
    assert out["c1"] == pytest.approx(66.6666, rel=1e-4)
    assert isinstance(
        rules.check_assessment(assessed({"eq": 67}), TWO_THIRDS, SELF, cfg), rules.Rejected
    )


@pytest.mark.parametrize(
    ("score", "what"),
    [
        ({">=": 80.5}, "threshold must be an integer, got 80.5"),
        ({">=": "80"}, "threshold must be an integer, got '80'"),
        ({">=": True}, "threshold must be an integer"),
        ({">=": None}, "threshold must be an integer"),
        (80, "must be an object {operator: integer}, got 80"),
        ("80", "must be an object"),
        ([">=", 80], "must be an object"),
        ({}, "is empty"),
        ({"gt": 80}, "unknown operator 'gt'"),
        ({"GE": 80, ">=": 1}, "unknown operator 'GE'"),  # only the first entry counts
    ],
)
def test_malformed_thresholds_are_fatal_rejections(score, what):
    out = rules.check_assessment(assessed(score), TWO_THIRDS, SELF, rules.PreConfig())
    assert isinstance(out, rules.Rejected)
    assert out.step == "assessment"
    assert out.fatal
    assert what in out.reason


def test_missing_score_threshold_is_fatal():
    base = CQL_EVENT_1_TEMPLATES["template_01_dev_001"]
    (t,) = rules.templates({"t": {**base, "criteria": '{"assessment": {"x": 1}}'}})
    assert isinstance(t, rules.Template)
    out = rules.check_assessment(t, TWO_THIRDS, SELF, rules.PreConfig())
    assert isinstance(out, rules.Rejected)
    assert out.fatal


def test_only_the_first_threshold_entry_is_used():
    out = rules.check_assessment(assessed({">=": 60, "<": 10}), TWO_THIRDS, SELF, rules.PreConfig())
    assert isinstance(out, dict)


def test_best_score_is_the_maximum_percentage_over_supported_contents():
    aggregates = {
        "score:c1": 1.0,
        "max_score:c1": 4.0,  # 25%
        "score:c2": 9.0,
        "max_score:c2": 10.0,  # 90%
        "score:c3": 10.0,
        "max_score:c3": 10.0,  # 100% but a Course, not SelfAssess
        "attempts_count:c1": 3.0,
    }
    out = rules.check_assessment(assessed({">=": 90}), aggregates, SELF, rules.PreConfig())
    assert out == {"c1": 25.0, "c2": 90.0}
    assert isinstance(
        rules.check_assessment(assessed({">": 90}), aggregates, SELF, rules.PreConfig()),
        rules.Rejected,
    )


def test_content_type_match_is_exact_and_configurable():
    aggregates = {"score:c1": 1.0, "max_score:c1": 1.0}
    types = {"c1": "selfAssess"}
    out = rules.check_assessment(assessed({">=": 50}), aggregates, types, rules.PreConfig())
    assert isinstance(out, rules.Rejected)
    assert "best score 0.0" in out.reason
    assert rules.check_assessment(assessed({">=": 50}), aggregates, types, CFG) == {"c1": 100.0}


def test_max_score_defaults_to_one_and_a_zero_max_is_left_out():
    cfg = rules.PreConfig()
    assert rules.check_assessment(assessed({">=": 0}), {"score:c1": 0.5}, SELF, cfg) == {"c1": 50.0}
    out = rules.check_assessment(
        assessed({">=": 0}),
        {"score:c1": 1.0, "max_score:c1": 0.0, "score:c2": 1.0, "max_score:c2": 2.0},
        SELF,
        cfg,
    )
    assert out == {"c2": 50.0}


def test_no_scores_means_zero():
    out = rules.check_assessment(assessed({"<=": 0}), {}, {}, rules.PreConfig())
    assert out == {}
    assert isinstance(
        rules.check_assessment(assessed({">": 0}), {}, {}, rules.PreConfig()), rules.Rejected
    )


def test_missing_metadata_is_excluded_when_suppressed_else_fatal():
    aggregates = {"score:c9": 1.0, "max_score:c9": 1.0, "score:c1": 1.0, "max_score:c1": 2.0}
    types = {"c1": "SelfAssess", "c9": None}
    out = rules.check_assessment(assessed({">=": 50}), aggregates, types, rules.PreConfig())
    assert out == {"c1": 50.0}
    strict = rules.PreConfig(suppress_missing_metadata=False)
    out = rules.check_assessment(assessed({">=": 50}), aggregates, {"c1": "SelfAssess"}, strict)
    assert out == rules.Rejected("assessment", "Metadata not available in cache or API c9", True)


def test_no_assessment_criteria_gives_an_empty_score_map():
    (t,) = rules.templates(
        {"t": {**CQL_EVENT_1_TEMPLATES["template_01_dev_001"], "criteria": '{"enrollment": {}}'}}
    )
    assert isinstance(t, rules.Template)
    assert rules.check_assessment(t, TWO_THIRDS, SELF, rules.PreConfig()) == {}


def test_aggregates_merge_agg_then_aggregates():
    merged = rules.merged_aggregates(
        {"score:c1": 1, "max_score:c1": 2}, {"score:c1": 2.0, "score:c2": 1.0}
    )
    assert merged == {"score:c1": 2.0, "max_score:c1": 2.0, "score:c2": 1.0}
    assert rules.assessment_content_ids(merged) == ["c1", "c2"]
    assert rules.merged_aggregates(None, None) == {}


def test_content_metadata_normalisation_and_type():
    meta = rules.normalise_content_metadata(CACHE_CONTENT_001)
    assert meta == {"identifier": "content_001", "contenttype": "selfAssess"}
    assert rules.content_type(meta) == "selfAssess"
    meta = rules.normalise_content_metadata('{"Content_Type": "SelfAssess", "name": ""}')
    assert meta == {"contenttype": "SelfAssess"}
    assert rules.content_type(rules.normalise_content_metadata('{"name": "x"}')) == ""
    for nothing in (None, "", "not json", "[1]", "{}"):
        assert rules.content_type(rules.normalise_content_metadata(nothing)) is None


def test_course_name_sources():
    # what the content-read API answered is the collection cache's value here
    content = load("pre_processor.CONTENT_1.json")["result"]["content"]
    assert rules.stored_course_name(json.dumps(content)) == "test Course"
    hierarchy = {"identifier": "c", "name": "Maths", "children": [{"name": "Unit 1"}]}
    assert rules.stored_course_name(json.dumps(hierarchy)) == "Maths"
    assert rules.stored_course_name('{"identifier": "c", "name": "Maths"}') == "Maths"
    assert rules.stored_course_name(None) is None
    assert rules.stored_course_name('{"name": ""}') is None
    for nothing in ("", "not json", "[1]", '{"name": 5}'):
        assert rules.stored_course_name(nothing) is None


# -- user ------------------------------------------------------------------------------------
def test_user_criteria_are_plain_equality_on_profile_keys():
    base = CQL_EVENT_1_TEMPLATES["template_01_dev_001"]
    (t,) = rules.templates({"t": {**base, "criteria": '{"user": {"rootOrgId": "Org001"}}'}})
    assert isinstance(t, rules.Template)
    p = profile("pre_processor.USER_1.json")
    assert rules.check_user(t, p) is None
    out = rules.check_user(t, {**p, "rootOrgId": "Org002"})
    assert out is not None
    assert out.step == "user"
    assert not out.fatal
    (all_users,) = rules.templates({"t": {**base, "criteria": '{"user": {"rootOrgId": ""}}'}})
    assert isinstance(all_users, rules.Template)
    assert rules.check_user(all_users, p) is not None  # "All" only matches an empty rootOrgId


def test_a_missing_or_empty_profile_is_rejected():
    nothings: tuple[dict[str, Any] | None, ...] = (None, {})
    for nothing in nothings:
        out = rules.check_user(template_1(), nothing)
        assert out is not None
        assert out.step == "user"
        assert "not found" in out.reason


@pytest.mark.parametrize(
    ("first", "last", "name"),
    [
        ("user", "name", "user name"),
        ("Rajesh", "", "Rajesh"),
        ("Suresh", None, "Suresh"),
        ("Manju", "null", "Manju"),
        ("Manju", "NULL", "Manju"),
        ("null", "Kumar", "Kumar"),
        (None, None, ""),
        ("  Anna  Maria ", " Lee\t", "Anna  Maria   Lee"),  # inner spaces kept
    ],
)
def test_recipient_name(first, last, name):
    assert rules.recipient_name({"firstName": first, "lastName": last}) == name


def test_recipient_name_with_missing_keys():
    assert rules.recipient_name({"lastName": "Rao"}) == "Rao"
    assert rules.recipient_name({}) == ""


# -- course name -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("test Course", "test Course"),
        ("Maths\u0007 101\u001f", "Maths 101"),
        ("Line\\nBreak", "LineBreak"),
        ("C:\\temp", "C:emp"),
        ("Back\\\\slash", "Back\\slash"),
        ("Say \\\"hi\\\" \\'x\\'", "Say \"hi\" 'x'"),
        ("\\101\\102C", "ABC"),
        ("\\7x", "x"),
        ("\\477", "'7"),
        ("\\0", ""),
        ("Caf\u00e9", "Caf\u00e9"),
    ],
)
def test_course_name_escapes_and_control_characters(raw, name):
    assert rules.course_name(raw) == name


@pytest.mark.parametrize(
    "raw",
    ["C:\\Users\\me\\course", "Caf\\u00e9", "\\d+", "trailing\\"],
)
def test_bad_course_name_escapes_are_invalid(raw):
    with pytest.raises(InvalidEvent, match="course name"):
        rules.course_name(raw)


def test_a_bad_course_name_is_a_recorded_fatal_rejection():
    d = rules.build_decision(
        request_1(),
        "user001",
        template_1(),
        rules.EnrolmentOutcome("", COMPLETED, {}),
        {},
        profile("pre_processor.USER_1.json"),
        "Caf\\u00e9 course",
        CFG,
        now_ms=1,
        mid="LMS.x",
    )
    assert d.event is None
    assert d.rejected is not None
    assert d.rejected.step == "course"
    assert d.rejected.fatal
    assert "\\u" in d.rejected.reason


# -- dates and the event ---------------------------------------------------------------------
def test_issued_date_is_the_completion_date_in_the_configured_zone():
    late = datetime(2021, 5, 27, 20, 0)
    assert rules.issued_date(late, "UTC") == "2021-05-27"
    assert rules.issued_date(late, "Asia/Kolkata") == "2021-05-28"
    aware = datetime(2021, 5, 27, 1, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert rules.issued_date(aware, "UTC") == "2021-05-26"
    assert rules.issued_date(datetime(2021, 5, 27, tzinfo=UTC), "UTC") == "2021-05-27"


def test_a_null_completion_date_is_invalid():
    with pytest.raises(InvalidEvent, match="completedon is null"):
        rules.issued_date(None, "UTC")


def test_a_null_completion_date_is_a_recorded_fatal_rejection():
    d = run(
        request_1(),
        "user001",
        template_1(),
        {**user001_row(), "completedon": None},
        rules.merged_aggregates(USER001_AGG, USER001_AGGREGATES),
        profile("pre_processor.USER_1.json"),
        COURSE_NAME,
    )
    assert d.event is None
    assert d.rejected is not None
    assert (d.rejected.step, d.rejected.fatal) == ("date", True)


def test_cloud_base_path_placeholder_is_replaced_when_configured():
    raw = {**load("pre_processor.TEMPLATE_1.json"), "url": "CLOUD_BASE_PATH/content/x.svg"}
    (t,) = rules.templates({"t": raw})
    assert isinstance(t, rules.Template)
    outcome = rules.EnrolmentOutcome("", COMPLETED, {})
    p = profile("pre_processor.USER_1.json")

    def svg(cfg: rules.PreConfig) -> str:
        event = rules.generate_event(
            request_1(), "user001", t, outcome, {}, p, "c", cfg, now_ms=1, mid="LMS.x"
        )
        return str(event["edata"]["svgTemplate"])

    assert svg(CFG) == "CLOUD_BASE_PATH/content/x.svg"
    cname = rules.PreConfig(cloud_base_url="https://obj.dev.sunbirded.org/sunbird-content-staging")
    assert svg(cname) == "https://obj.dev.sunbirded.org/sunbird-content-staging/content/x.svg"


def test_related_user_props_location_and_defaults():
    raw = {
        **load("pre_processor.TEMPLATE_1.json"),
        "criteria": '{"enrollment": {"status": 2}}',
        "additionalProps": '{"user": ["rootOrgId", "missing"], "location": ["school"], "assessment": ["score"]}',
    }
    (t,) = rules.templates({"t": raw})
    assert isinstance(t, rules.Template)
    p = profile("pre_processor.USER_1.json")
    event = rules.generate_event(
        request_1(),
        "user001",
        t,
        rules.EnrolmentOutcome("", COMPLETED, {}),
        {},
        p,
        "c",
        CFG,
        now_ms=5,
        mid="LMS.m",
    )
    # no location found, no assessment criteria (so no score), the user prop at the top level
    assert event["edata"]["related"] == {
        "batchId": BATCH,
        "courseId": COURSE,
        "type": "Course Completion Certificate",
        "rootOrgId": "Org001",
    }
    assert event["edata"]["orgId"] == "Org001"
    no_org = {k: v for k, v in p.items() if k != "rootOrgId"}
    event = rules.generate_event(
        request_1(),
        "user001",
        t,
        rules.EnrolmentOutcome("", COMPLETED, {}),
        {},
        no_org,
        "c",
        CFG,
        now_ms=5,
        mid="LMS.m",
    )
    assert event["edata"]["orgId"] == ""


def test_generate_mid_is_stable_per_request_user_and_template():
    req = request_1()
    mid = rules.generate_mid(req, "user001", "t1")
    assert mid.startswith("LMS.")
    assert mid == rules.generate_mid(req, "user001", "t1")
    assert mid != rules.generate_mid(req, "user002", "t1")
    assert mid != rules.generate_mid(req, "user001", "t2")


def test_epoch_millis():
    assert rules.epoch_millis(COMPLETED) == 1622073600000
    assert (
        rules.epoch_millis(
            datetime(2021, 5, 27, 5, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
        )
        == 1622073600000
    )
