"""Pure rules of certificate-pre-processor (docs/flows/certificate-pre-processor.md).

Our own data (tests/data/certificates/pre.*) states each upstream case: PP-1..PP-4 (a generate
event, recipient names), PP-T1 (the stored batch template), PP-D1..PP-D4 (no templates, enrolment
not active, int ``agg`` column, already issued). Expected values follow from the rules, not from
a run of the code.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from lernflow.config import load_settings
from lernflow.flows.certificate_pre_processor import processor, rules
from lernflow.flows.skipped import Skipped
from lernflow.kernel.errors import InvalidEvent
from tests.paths import DATA

FX = DATA / "certificates"
COURSE = "do_lf_algebra_101"
BATCH = "lfbatch0715"
USER = "lf_user_01"
QUIZ = "do_lf_quiz_01"
TMPL = "lf_tmpl_algebra_award"
CERT_NAME = "Algebra Completion Award"
COMPLETED = datetime(2024, 7, 15)  # naive UTC, as the Cassandra driver returns timestamps
COMPLETED_MS = 1721001600000  # 2024-07-15T00:00:00Z
ISSUER = {"name": "Lernflow Open School", "url": "https://school.lernflow.example/"}
SIGNATORIES = [
    {
        "image": "https://assets.lernflow.example/sign/registrar.png",
        "name": "Noor Haddad",
        "id": "REG",
        "designation": "Registrar",
    }
]
# The content cache holds the quiz as "selfAssess" and the job is configured with ["selfAssess"].
CFG = rules.PreConfig(
    supported_content_types=("selfAssess",), cert_domain_url="https://learn.lernflow.example"
)
CACHE_QUIZ = '{"identifier":"do_lf_quiz_01","contentType": "selfAssess"}'
NOW_MS = 1721035800123
MID = "LMS.0d9c8b7a-6f5e-4d3c-b2a1-908172635445"


def load(name: str) -> Any:
    return json.loads((FX / name).read_text())


def profile(name: str) -> dict[str, Any]:
    """``result.response`` of a user-read response file."""
    response: dict[str, Any] = load(name)["result"]["response"]
    return response


def template_1() -> rules.Template:
    parsed = rules.templates({TMPL: load("pre.template.json")})
    assert isinstance(parsed[0], rules.Template)
    return parsed[0]


# pre.cert_templates.json: the stored cert_templates of (COURSE, BATCH): enrolment status 2 and a
# score of at least 75, url "award.svg", an issuer with public keys and a notify template.
STORED_TEMPLATES: dict[str, dict[str, str]] = load("pre.cert_templates.json")
STORED = STORED_TEMPLATES[TMPL]


def user_row() -> dict[str, Any]:
    """USER's enrolment: active, status 2, completed 2024-07-15, holding CERT_NAME already."""
    return {
        "userid": USER,
        "courseid": COURSE,
        "batchid": BATCH,
        "active": True,
        "status": 2,
        "completedon": COMPLETED,
        "issued_certificates": [
            {
                "identifier": "lf-cert-prev-0001",
                "lastIssuedOn": "2023-03-02",
                "name": CERT_NAME,
                "token": "K7M2Q9",
            }
        ],
        "certificates": None,
        "progress": None,
    }


# USER's user_activity_agg: the double ``aggregates`` column only, 4 of 5 on the quiz (80 %)
USER_AGG: dict[str, float] = {}
USER_AGGREGATES = {f"score:{QUIZ}": 4.0, f"max_score:{QUIZ}": 5.0}


def types_for(aggregates: dict[str, float]) -> dict[str, str | None]:
    """Content types as the flow resolves them: content cache first (the quiz is cached)."""
    cache = {QUIZ: CACHE_QUIZ}
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
    return rules.decide_template(request, user_id, template, reads, cfg, now_ms=NOW_MS, mid=MID)


def event_1(**edata: object) -> bytes:
    doc = load("pre.issue_request.json")
    doc["edata"].update(edata)
    return json.dumps(doc).encode()


def request_1(**edata: object) -> rules.IssueRequest:
    req = rules.parse_request(event_1(**edata))
    assert isinstance(req, rules.IssueRequest)
    return req


COURSE_NAME = load("pre.content_read.json")["result"]["content"]["name"]


# -- request ---------------------------------------------------------------------------------
def test_fixture_request_parses():
    req = rules.parse_request((FX / "pre.issue_request.json").read_bytes())
    assert req == rules.IssueRequest(
        BATCH, COURSE, (USER,), True, "LP.1721030400000.5b7e2c1a-9d3f-4e8b-a6c0-2f4d8e1b7a93"
    )


def test_every_user_id_is_kept_in_order_and_once():
    req = request_1(userIds=["lf_user_01", "lf_user_02", "lf_user_01", "lf_user_03"])
    assert req.user_ids == ("lf_user_01", "lf_user_02", "lf_user_03")


@pytest.mark.parametrize("users", [None, []])
def test_a_request_without_users_is_rejected_with_a_reason(users):
    doc = load("pre.issue_request.json")
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
    doc = load("pre.issue_request.json")
    del doc["edata"]["action"]
    assert isinstance(rules.parse_request(json.dumps(doc).encode()), Skipped)
    assert isinstance(rules.parse_request(event_1(action="ISSUE-Certificate")), rules.IssueRequest)


def test_re_issue_defaults_to_false():
    doc = load("pre.issue_request.json")
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
        (event_1(userIds="lf_user_01"), "edata.userIds must be a list"),
        (event_1(userIds=["lf_user_01", 7]), r"edata.userIds\[1\] must be a non-empty string"),
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
    assert t.identifier == TMPL
    assert t.name == CERT_NAME
    assert t.criteria == {"enrollment": {"status": 2}, "assessment": {"score": {">=": 60}}}
    assert t.issuer == ISSUER
    assert t.signatory_list == SIGNATORIES
    assert t.additional_props == {
        "enrollment": ["completedOn"],
        "location": ["state", "district", "block"],
        "assessment": ["score"],
        "course": ["name"],
    }
    assert t.notify_template is None
    assert t.raw == load("pre.template.json")


def test_cql_template_parses_with_its_notify_template():
    (t,) = rules.templates(STORED_TEMPLATES)
    assert isinstance(t, rules.Template)
    assert t.issuer["publicKey"] == ["lf-k1", "lf-k2"]
    assert t.notify_template is not None
    assert t.notify_template["emailTemplateType"] == "lernflowCertMail"
    assert t.additional_props == {}


def test_templates_come_in_identifier_order_one_entry_per_key():
    good = STORED
    stored = {
        "t_b": {**good, "identifier": "t_b"},
        "t_c": {**good, "url": "template.png"},
        "t_a": {**good, "identifier": "t_a"},
    }
    out = rules.templates(stored)
    assert [getattr(t, "identifier", None) for t in out] == ["t_a", "t_b", None]
    assert isinstance(out[2], rules.Rejected)


def test_pp_d1_no_templates_means_nothing_to_do():
    # a batch whose cert_templates map is empty
    assert rules.templates({}) == []
    assert rules.templates(None) == []


@pytest.mark.parametrize("url", ["template.png", "TEMPLATE.SVG", None])
def test_non_svg_templates_are_rejected_visibly_but_not_as_faults(url):
    raw = dict(STORED)
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
    raw = dict(STORED)
    if criteria is None:
        del raw["criteria"]
    else:
        raw["criteria"] = criteria
    (out,) = rules.templates({TMPL: raw}, batch_id=BATCH)
    assert isinstance(out, rules.Rejected)
    assert out.step == "template"
    assert out.fatal
    assert out.reason.startswith(f"Invalid template for batch : {BATCH} (template {TMPL}: ")
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
    raw = {**STORED, key: value}
    (out,) = rules.templates({"t": raw})
    assert isinstance(out, rules.Rejected)
    assert out.fatal
    assert what in out.reason


def test_q5_user_alone_and_users_alone_both_pass_validation():
    base = STORED
    for criteria in ('{"user": {"rootOrgId": "lf_org_01"}}', '{"users": {"rootOrgId": "x"}}'):
        (out,) = rules.templates({"t": {**base, "criteria": criteria}})
        assert isinstance(out, rules.Template), criteria


def test_q5_users_is_never_evaluated_and_user_is():
    base = STORED
    (users,) = rules.templates({"t": {**base, "criteria": '{"users": {"rootOrgId": "x"}}'}})
    (user,) = rules.templates({"t": {**base, "criteria": '{"user": {"rootOrgId": "x"}}'}})
    assert isinstance(users, rules.Template)
    assert isinstance(user, rules.Template)
    p = profile("pre.profile.full.json")
    assert rules.check_user(users, p) is None
    rejected = rules.check_user(user, p)
    assert rejected is not None
    assert rejected.step == "user"
    assert "rootOrgId" in rejected.reason


def test_q5_a_users_only_template_ends_without_a_completion_date():
    base = STORED
    (t,) = rules.templates({"t": {**base, "criteria": '{"users": {"rootOrgId": "x"}}'}})
    assert isinstance(t, rules.Template)
    assert not rules.needs_enrolment(t)
    d = run(request_1(), USER, t, None, {}, profile("pre.profile.full.json"), "c")
    assert d.event is None
    assert d.rejected is not None
    assert d.rejected.step == "date"
    assert d.rejected.fatal


# -- PP-1..PP-4, PP-T1 and PP-D2..D4 ---------------------------------------------------------
AWARD_SVG = "https://assets.lernflow.example/certs/lf_tmpl_algebra_award/award.svg"


def expected_pp1_event() -> dict[str, Any]:
    """The complete generate event for USER (pre.template.json's identifier, url, additionalProps).

    Eligible: active, status 2, 80 % on the selfAssess quiz >= 60; a re-issue of CERT_NAME, so
    oldId is the held certificate's identifier. The issue date is the completion date; the
    location keeps the requested types the profile has (no "block"); the course name comes from
    the content read response.
    """
    return {
        "actor": {"id": "Certificate Generator", "type": "System"},
        "eid": "BE_JOB_REQUEST",
        "edata": {
            "issuedDate": "2024-07-15",
            "data": [{"recipientName": "Mira Okafor", "recipientId": USER}],
            "criteria": {"narrative": CERT_NAME},
            "svgTemplate": AWARD_SVG,
            "oldId": "lf-cert-prev-0001",
            "templateId": TMPL,
            "userId": USER,
            "orgId": "lf_org_01",
            "issuer": ISSUER,
            "signatoryList": SIGNATORIES,
            "courseName": "Algebra Foundations",
            "basePath": "https://learn.lernflow.example/certs",
            "related": {
                "batchId": BATCH,
                "courseId": COURSE,
                "type": CERT_NAME,
                "location": {"state": "Northshire", "district": "Harbor Vale"},
                "enrollment": {"completedOn": COMPLETED_MS},
                "assessment": {"score": {QUIZ: 80.0}},
                "course": {"name": "Algebra Foundations"},
            },
            "name": CERT_NAME,
            "tag": BATCH,
        },
        "ets": NOW_MS,
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.learning.platform"}},
        "mid": MID,
        "object": {"id": USER, "type": "GenerateCertificate"},
    }


def pp(profile_file: str) -> rules.Decision:
    aggregates = rules.merged_aggregates(USER_AGG, USER_AGGREGATES)
    return run(
        request_1(),
        USER,
        template_1(),
        user_row(),
        aggregates,
        profile(profile_file),
        COURSE_NAME,
    )


def test_pp_1_builds_the_documented_generate_event():
    d = pp("pre.profile.full.json")
    assert d.rejected is None
    assert d.event == expected_pp1_event()
    assert list(d.event) == ["actor", "eid", "edata", "ets", "context", "mid", "object"]
    assert json.dumps(d.event) == json.dumps(expected_pp1_event())
    assert (d.user_id, d.template_id) == (USER, TMPL)


@pytest.mark.parametrize(
    ("profile_file", "name"),
    [
        ("pre.profile.empty_last_name.json", "Lena"),  # PP-2
        ("pre.profile.null_last_name.json", "Tomas"),  # PP-3
        ("pre.profile.null_string_last_name.json", "Ines"),  # PP-4
    ],
)
def test_pp_2_to_4_recipient_name_drops_empty_null_and_null_string_last_names(profile_file, name):
    d = pp(profile_file)
    assert d.event is not None
    assert d.event["edata"]["data"][0]["recipientName"] == name
    assert "location" not in d.event["edata"]["related"]  # these users have no locations


def test_pp_t1_stored_template_with_threshold_75_issues_for_80_percent():
    (t,) = rules.templates(STORED_TEMPLATES, batch_id=BATCH)
    assert isinstance(t, rules.Template)
    d = run(
        request_1(),
        USER,
        t,
        user_row(),
        rules.merged_aggregates(USER_AGG, USER_AGGREGATES),
        profile("pre.profile.full.json"),
        COURSE_NAME,
    )
    assert d.event is not None
    edata = d.event["edata"]
    assert edata["svgTemplate"] == "award.svg"
    # no additionalProps: related carries only the batch, the course and the certificate name
    assert edata["related"] == {"batchId": BATCH, "courseId": COURSE, "type": CERT_NAME}
    assert edata["issuer"]["publicKey"] == ["lf-k1", "lf-k2"]
    assert edata["oldId"] == "lf-cert-prev-0001"


def test_pp_t1_the_same_template_refuses_a_score_below_its_threshold():
    (t,) = rules.templates(STORED_TEMPLATES, batch_id=BATCH)
    assert isinstance(t, rules.Template)
    low = {f"score:{QUIZ}": 7.0, f"max_score:{QUIZ}": 10.0}  # 70 % < 75
    d = run(request_1(), USER, t, user_row(), low, profile("pre.profile.full.json"), COURSE_NAME)
    assert d.event is None
    assert d.rejected is not None
    assert (d.rejected.step, d.rejected.fatal) == ("assessment", False)


def test_pp_d2_enrolment_without_active_or_status_is_not_eligible():
    # A batch with a status-2-only template, and lf_user_02's row with only completedon set:
    # a null active reads as false, a null status as 0.
    raw = {
        "criteria": '{"enrollment":{"status":2}}',
        "url": "award.svg",
        "identifier": "lf_tmpl_algebra_merit",
        "issuer": STORED["issuer"],
        "name": "Algebra Merit Award",
        "signatoryList": STORED["signatoryList"],
    }
    (t,) = rules.templates({"lf_tmpl_algebra_merit": raw})
    assert isinstance(t, rules.Template)
    row = {
        "userid": "lf_user_02",
        "courseid": "do_lf_algebra_201",
        "batchid": "lfbatch0801",
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
    # lf_user_03 in do_lf_stats_301/lfbatch0901: active, status 2, issued_certificates [], and a
    # user_activity_agg row with the int agg column only: 1 of 1 = 100 % >= 75.
    (t,) = rules.templates({TMPL: {**STORED, "name": "Statistics Merit Award"}})
    assert isinstance(t, rules.Template)
    row = {
        "userid": "lf_user_03",
        "courseid": "do_lf_stats_301",
        "batchid": "lfbatch0901",
        "active": True,
        "status": 2,
        "completedon": COMPLETED,
        "issued_certificates": [],
    }
    aggregates = rules.merged_aggregates({f"score:{QUIZ}": 1, f"max_score:{QUIZ}": 1}, {})
    assert aggregates == {f"score:{QUIZ}": 1.0, f"max_score:{QUIZ}": 1.0}
    req = rules.IssueRequest("lfbatch0901", "do_lf_stats_301", ("lf_user_03",), False, None)
    d = run(req, "lf_user_03", t, row, aggregates, profile("pre.profile.full.json"), "Stats")
    assert d.event is not None
    assert d.event["edata"]["oldId"] == ""
    assert d.event["edata"]["tag"] == "lfbatch0901"
    assert d.event["edata"]["name"] == "Statistics Merit Award"
    assert d.event["object"] == {"id": "lf_user_03", "type": "GenerateCertificate"}


def test_pp_d4_already_issued_by_name_and_not_a_re_issue_is_skipped():
    d = run(
        request_1(reIssue=False),
        USER,
        template_1(),
        user_row(),
        rules.merged_aggregates(USER_AGG, USER_AGGREGATES),
        profile("pre.profile.full.json"),
        COURSE_NAME,
    )
    assert d.event is None
    assert d.rejected is not None
    assert d.rejected.step == "enrollment"
    assert "already issued" in d.rejected.reason
    assert not d.rejected.fatal


def test_several_user_ids_are_each_decided():
    req = request_1(userIds=[USER, "lf_user_03"])
    rows = {
        USER: user_row(),
        "lf_user_03": {**user_row(), "userid": "lf_user_03", "issued_certificates": []},
    }
    decisions = [
        run(
            req,
            user,
            template_1(),
            rows[user],
            rules.merged_aggregates(USER_AGG, USER_AGGREGATES),
            profile("pre.profile.full.json"),
            COURSE_NAME,
        )
        for user in req.user_ids
    ]
    assert [d.event["object"]["id"] for d in decisions if d.event] == [USER, "lf_user_03"]
    assert [d.event["edata"]["oldId"] for d in decisions if d.event] == ["lf-cert-prev-0001", ""]
    assert [d.event["edata"]["data"][0]["recipientId"] for d in decisions if d.event] == [
        USER,
        "lf_user_03",
    ]


# -- enrolment -------------------------------------------------------------------------------
def test_no_enrolment_row_is_not_eligible():
    out = rules.check_enrolment(template_1(), None, re_issue=True)
    assert isinstance(out, rules.Rejected)
    assert out.step == "enrollment"
    assert not out.fatal


def test_dedup_is_by_name_case_insensitively():
    row = user_row()
    row["issued_certificates"] = [{"identifier": "x1", "name": "ALGEBRA completion AWARD"}]
    assert isinstance(rules.check_enrolment(template_1(), row, re_issue=False), rules.Rejected)
    out = rules.check_enrolment(template_1(), row, re_issue=True)
    assert isinstance(out, rules.EnrolmentOutcome)
    assert out.old_id == "x1"
    row["issued_certificates"] = [{"identifier": "x2", "name": "Other certificate"}]
    out = rules.check_enrolment(template_1(), row, re_issue=False)
    assert isinstance(out, rules.EnrolmentOutcome)
    assert out.old_id == ""


def test_re_issue_without_an_earlier_certificate_has_no_old_id():
    row = {**user_row(), "issued_certificates": None}
    out = rules.check_enrolment(template_1(), row, re_issue=True)
    assert isinstance(out, rules.EnrolmentOutcome)
    assert out.old_id == ""
    assert out.issued_on == COMPLETED
    assert out.props == {"completedOn": COMPLETED}


def test_status_criteria_default_and_numeric_equality():
    base = STORED

    def with_enrollment(enrollment: str) -> rules.Template:
        (t,) = rules.templates({"t": {**base, "criteria": f'{{"enrollment": {enrollment}}}'}})
        assert isinstance(t, rules.Template)
        return t

    row = {**user_row(), "issued_certificates": []}
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
    raw = {**load("pre.template.json"), "additionalProps": '{"enrollment": ["nope"]}'}
    (t,) = rules.templates({"t": raw})
    assert isinstance(t, rules.Template)
    out = rules.check_enrolment(t, user_row(), re_issue=True)
    assert isinstance(out, rules.Rejected)
    assert out.fatal
    assert "'nope'" in out.reason


def test_enrolment_props_are_read_by_lower_cased_column_and_become_json():
    raw = {
        **load("pre.template.json"),
        "additionalProps": '{"enrollment": ["completedOn", "Progress", "issued_certificates"]}',
    }
    (t,) = rules.templates({"t": raw})
    assert isinstance(t, rules.Template)
    row = {**user_row(), "progress": 100}
    outcome = rules.check_enrolment(t, row, re_issue=True)
    assert isinstance(outcome, rules.EnrolmentOutcome)
    assert outcome.props["Progress"] == 100
    event = rules.generate_event(
        request_1(),
        USER,
        t,
        outcome,
        {},
        profile("pre.profile.full.json"),
        "c",
        CFG,
        now_ms=1,
        mid="LMS.x",
    )
    enrollment = event["edata"]["related"]["enrollment"]
    assert enrollment["completedOn"] == COMPLETED_MS
    assert enrollment["issued_certificates"][0]["token"] == "K7M2Q9"
    json.dumps(event)


def test_no_enrolment_criteria_passes_without_a_row():
    base = STORED
    (t,) = rules.templates({"t": {**base, "criteria": '{"assessment": {"score": {">=": 0}}}'}})
    assert isinstance(t, rules.Template)
    assert not rules.needs_enrolment(t)
    assert rules.needs_assessment(t)
    assert rules.check_enrolment(t, None, False) == rules.EnrolmentOutcome("", None, {})


# -- assessment ------------------------------------------------------------------------------
def assessed(score_criteria: object) -> rules.Template:
    base = STORED
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
    base = STORED
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
    (t,) = rules.templates({"t": {**STORED, "criteria": '{"enrollment": {}}'}})
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
    meta = rules.normalise_content_metadata(CACHE_QUIZ)
    assert meta == {"identifier": QUIZ, "contenttype": "selfAssess"}
    assert rules.content_type(meta) == "selfAssess"
    meta = rules.normalise_content_metadata('{"Content_Type": "SelfAssess", "name": ""}')
    assert meta == {"contenttype": "SelfAssess"}
    assert rules.content_type(rules.normalise_content_metadata('{"name": "x"}')) == ""
    for nothing in (None, "", "not json", "[1]", "{}"):
        assert rules.content_type(rules.normalise_content_metadata(nothing)) is None


def test_course_name_sources():
    # what the content-read API answered is the collection cache's value here
    content = load("pre.content_read.json")["result"]["content"]
    assert rules.stored_course_name(json.dumps(content)) == "Algebra Foundations"
    hierarchy = {"identifier": "c", "name": "Maths", "children": [{"name": "Unit 1"}]}
    assert rules.stored_course_name(json.dumps(hierarchy)) == "Maths"
    assert rules.stored_course_name('{"identifier": "c", "name": "Maths"}') == "Maths"
    assert rules.stored_course_name(None) is None
    assert rules.stored_course_name('{"name": ""}') is None
    for nothing in ("", "not json", "[1]", '{"name": 5}'):
        assert rules.stored_course_name(nothing) is None


# -- user ------------------------------------------------------------------------------------
def test_user_criteria_are_plain_equality_on_profile_keys():
    base = STORED
    (t,) = rules.templates({"t": {**base, "criteria": '{"user": {"rootOrgId": "lf_org_01"}}'}})
    assert isinstance(t, rules.Template)
    p = profile("pre.profile.full.json")
    assert rules.check_user(t, p) is None
    out = rules.check_user(t, {**p, "rootOrgId": "lf_org_02"})
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
        ("Lena", "", "Lena"),
        ("Tomas", None, "Tomas"),
        ("Ines", "null", "Ines"),
        ("Ines", "NULL", "Ines"),
        ("null", "Varga", "Varga"),
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
        ("Algebra Foundations", "Algebra Foundations"),
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
        USER,
        template_1(),
        rules.EnrolmentOutcome("", COMPLETED, {}),
        {},
        profile("pre.profile.full.json"),
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
    late = datetime(2024, 7, 15, 20, 0)  # naive = UTC; 01:30 next day at +05:30
    assert rules.issued_date(late, "UTC") == "2024-07-15"
    assert rules.issued_date(late, "Asia/Kolkata") == "2024-07-16"
    aware = datetime(2024, 7, 15, 1, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert rules.issued_date(aware, "UTC") == "2024-07-14"  # 19:30 UTC the day before
    assert rules.issued_date(datetime(2024, 7, 15, tzinfo=UTC), "UTC") == "2024-07-15"


def test_a_null_completion_date_is_invalid():
    with pytest.raises(InvalidEvent, match="completedon is null"):
        rules.issued_date(None, "UTC")


def test_a_null_completion_date_is_a_recorded_fatal_rejection():
    d = run(
        request_1(),
        USER,
        template_1(),
        {**user_row(), "completedon": None},
        rules.merged_aggregates(USER_AGG, USER_AGGREGATES),
        profile("pre.profile.full.json"),
        COURSE_NAME,
    )
    assert d.event is None
    assert d.rejected is not None
    assert (d.rejected.step, d.rejected.fatal) == ("date", True)


def test_cloud_base_path_placeholder_is_replaced_when_configured():
    raw = {**load("pre.template.json"), "url": "CLOUD_BASE_PATH/content/x.svg"}
    (t,) = rules.templates({"t": raw})
    assert isinstance(t, rules.Template)
    outcome = rules.EnrolmentOutcome("", COMPLETED, {})
    p = profile("pre.profile.full.json")

    def svg(cfg: rules.PreConfig) -> str:
        event = rules.generate_event(
            request_1(), USER, t, outcome, {}, p, "c", cfg, now_ms=1, mid="LMS.x"
        )
        return str(event["edata"]["svgTemplate"])

    assert svg(CFG) == "CLOUD_BASE_PATH/content/x.svg"
    cname = rules.PreConfig(cloud_base_url="https://objects.lernflow.example/content-bucket")
    assert svg(cname) == "https://objects.lernflow.example/content-bucket/content/x.svg"


def test_related_user_props_location_and_defaults():
    raw = {
        **load("pre.template.json"),
        "criteria": '{"enrollment": {"status": 2}}',
        "additionalProps": '{"user": ["rootOrgId", "missing"], "location": ["school"], "assessment": ["score"]}',
    }
    (t,) = rules.templates({"t": raw})
    assert isinstance(t, rules.Template)
    p = profile("pre.profile.full.json")
    event = rules.generate_event(
        request_1(),
        USER,
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
        "type": CERT_NAME,
        "rootOrgId": "lf_org_01",
    }
    assert event["edata"]["orgId"] == "lf_org_01"
    no_org = {k: v for k, v in p.items() if k != "rootOrgId"}
    event = rules.generate_event(
        request_1(),
        USER,
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
    mid = rules.generate_mid(req, USER, "t1")
    assert mid.startswith("LMS.")
    assert mid == rules.generate_mid(req, USER, "t1")
    assert mid != rules.generate_mid(req, "lf_user_02", "t1")
    assert mid != rules.generate_mid(req, USER, "t2")


def test_epoch_millis():
    assert rules.epoch_millis(COMPLETED) == COMPLETED_MS
    assert (
        rules.epoch_millis(
            datetime(2024, 7, 15, 5, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
        )
        == COMPLETED_MS
    )


def test_the_running_flow_takes_the_cloud_base_url_from_the_settings(monkeypatch):
    monkeypatch.setenv("LERNFLOW_CERT_CLOUD_BASE_URL", "https://objects.lernflow.example/bucket")
    cfg = processor.pre_config(load_settings())
    assert cfg.cloud_base_url == "https://objects.lernflow.example/bucket"
    assert cfg.cloud_base_path_placeholder == "CLOUD_BASE_PATH"
