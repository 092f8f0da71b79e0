"""Our schema file against the Cassandra contract the Sunbird jobs read and write.

The contract is written out below by us: every keyspace.table the report and stream jobs use,
with each column and its CQL type (``docs/flows/`` describes the jobs that use them). The same
check against Sunbird's own CQL files runs in ``tests/conformance/test_schema_cql.py``.
"""

from __future__ import annotations

import re

from lernflow.config import CassandraSettings
from lernflow.ops.schema import _CREATE_TABLE, _columns, cql_statements

# keyspace.table -> column -> CQL type (lower case, no spaces)
CONTRACT: dict[str, dict[str, str]] = {
    "hierarchy_store.content_hierarchy": {
        "hierarchy": "text",
        "identifier": "text",
    },
    "sunbird.location": {
        "code": "text",
        "id": "text",
        "name": "text",
        "parentid": "text",
        "type": "text",
    },
    "sunbird.organisation": {
        "addressid": "text",
        "approvedby": "text",
        "approveddate": "text",
        "channel": "text",
        "communityid": "text",
        "contactdetail": "text",
        "createdby": "text",
        "createddate": "text",
        "datetime": "timestamp",
        "description": "text",
        "email": "text",
        "externalid": "text",
        "hashtagid": "text",
        "homeurl": "text",
        "id": "text",
        "imgurl": "text",
        "isapproved": "boolean",
        "isdefault": "boolean",
        "isrootorg": "boolean",
        "isssoenabled": "boolean",
        "istenant": "boolean",
        "keys": "map<text,frozen<list<text>>>",
        "locationid": "text",
        "locationids": "list<text>",
        "noofmembers": "int",
        "organisationtype": "text",
        "orgcode": "text",
        "orglocation": "text",
        "orgname": "text",
        "orgtype": "text",
        "orgtypeid": "text",
        "parentorgid": "text",
        "preferredlanguage": "text",
        "provider": "text",
        "rootorgid": "text",
        "slug": "text",
        "status": "int",
        "theme": "text",
        "thumbnail": "text",
        "updatedby": "text",
        "updateddate": "text",
    },
    "sunbird.system_settings": {
        "field": "text",
        "id": "text",
        "value": "text",
    },
    "sunbird.user": {
        "avatar": "text",
        "channel": "text",
        "countrycode": "text",
        "createdby": "text",
        "createddate": "text",
        "currentlogintime": "text",
        "dob": "text",
        "email": "text",
        "emailverified": "boolean",
        "firstname": "text",
        "flagsvalue": "int",
        "framework": "map<text,frozen<list<text>>>",
        "gender": "text",
        "grade": "list<text>",
        "id": "text",
        "isdeleted": "boolean",
        "language": "list<text>",
        "lastlogintime": "text",
        "lastname": "text",
        "location": "text",
        "locationids": "list<text>",
        "loginid": "text",
        "managedby": "text",
        "maskedemail": "text",
        "maskedphone": "text",
        "password": "text",
        "phone": "text",
        "phoneverified": "boolean",
        "prevusedemail": "text",
        "prevusedphone": "text",
        "profilelocation": "text",
        "profilesummary": "text",
        "profileusertype": "text",
        "profileusertypes": "text",
        "profilevisibility": "map<text,text>",
        "provider": "text",
        "recoveryemail": "text",
        "recoveryphone": "text",
        "registryid": "text",
        "roles": "list<text>",
        "rootorgid": "text",
        "status": "int",
        "subject": "list<text>",
        "tcstatus": "text",
        "tcupdateddate": "text",
        "temppassword": "text",
        "thumbnail": "text",
        "tncacceptedon": "timestamp",
        "tncacceptedversion": "text",
        "updatedby": "text",
        "updateddate": "text",
        "userid": "text",
        "username": "text",
        "usersubtype": "text",
        "usertype": "text",
        "webpages": "list<frozen<map<text,text>>>",
    },
    "sunbird.user_consent": {
        "categories": "list<text>",
        "consent_data": "text",
        "consumer_id": "text",
        "consumer_type": "text",
        "created_on": "timestamp",
        "expiry": "timestamp",
        "id": "text",
        "last_updated_on": "timestamp",
        "object_id": "text",
        "object_type": "text",
        "status": "text",
        "user_id": "text",
    },
    "sunbird.user_declarations": {
        "createdby": "text",
        "createdon": "timestamp",
        "errortype": "text",
        "orgid": "text",
        "persona": "text",
        "status": "text",
        "updatedby": "text",
        "updatedon": "timestamp",
        "userid": "text",
        "userinfo": "map<text,text>",
    },
    "sunbird.user_organisation": {
        "addedby": "text",
        "addedbyname": "text",
        "approvaldate": "text",
        "approvedby": "text",
        "hashtagid": "text",
        "id": "text",
        "isapproved": "boolean",
        "isdeleted": "boolean",
        "isrejected": "boolean",
        "organisationid": "text",
        "orgjoindate": "text",
        "orgleftdate": "text",
        "position": "text",
        "roles": "list<text>",
        "updatedby": "text",
        "updateddate": "text",
        "userid": "text",
    },
    "sunbird.usr_external_identity": {
        "createdby": "text",
        "createdon": "timestamp",
        "externalid": "text",
        "idtype": "text",
        "lastupdatedby": "text",
        "lastupdatedon": "timestamp",
        "originalexternalid": "text",
        "originalidtype": "text",
        "originalprovider": "text",
        "provider": "text",
        "userid": "text",
    },
    "sunbird_courses.assessment_aggregator": {
        "attempt_id": "text",
        "batch_id": "text",
        "content_id": "text",
        "course_id": "text",
        "created_on": "timestamp",
        "grand_total": "text",
        "last_attempted_on": "timestamp",
        "question": "list<frozen<question>>",
        "total_max_score": "double",
        "total_score": "double",
        "updated_on": "timestamp",
        "user_id": "text",
    },
    "sunbird_courses.course_batch": {
        "batchid": "text",
        "cert_templates": "map<text,frozen<map<text,text>>>",
        "courseid": "text",
        "createdby": "text",
        "createddate": "text",
        "createdfor": "list<text>",
        "description": "text",
        "end_date": "timestamp",
        "enddate": "text",
        "enrollment_enddate": "timestamp",
        "enrollmentenddate": "text",
        "enrollmenttype": "text",
        "mentors": "list<text>",
        "name": "text",
        "start_date": "timestamp",
        "startdate": "text",
        "status": "int",
        "updateddate": "text",
    },
    "sunbird_courses.user_activity_agg": {
        "activity_id": "text",
        "activity_type": "text",
        "agg": "map<text,int>",
        "agg_details": "list<text>",
        "agg_last_updated": "map<text,timestamp>",
        "aggregates": "map<text,double>",
        "context_id": "text",
        "user_id": "text",
    },
    "sunbird_courses.user_content_consumption": {
        "batchid": "text",
        "completedcount": "int",
        "contentid": "text",
        "courseid": "text",
        "datetime": "timestamp",
        "lastaccesstime": "text",
        "lastcompletedtime": "text",
        "lastupdatedtime": "text",
        "progress": "int",
        "status": "int",
        "userid": "text",
        "viewcount": "int",
    },
    "sunbird_courses.user_enrolments": {
        "active": "boolean",
        "addedby": "text",
        "batchid": "text",
        "certificates": "list<frozen<map<text,text>>>",
        "completedon": "timestamp",
        "completionpercentage": "int",
        "contentstatus": "map<text,int>",
        "courseid": "text",
        "datetime": "timestamp",
        "enrolled_date": "timestamp",
        "enrolleddate": "text",
        "issued_certificates": "list<frozen<map<text,text>>>",
        "lastreadcontentid": "text",
        "lastreadcontentstatus": "int",
        "progress": "int",
        "status": "int",
        "userid": "text",
    },
}


def _norm(t: str) -> str:
    return re.sub(r"\s+", "", t.lower())


def _ours() -> dict[str, dict[str, str]]:
    tables = {}
    for stmt in cql_statements(CassandraSettings()):
        m = _CREATE_TABLE.match(stmt)
        if m:
            ks, table, body = m.groups()
            tables[f"{ks}.{table}"] = {k: _norm(v) for k, v in _columns(body).items()}
    return tables


def test_every_contract_column_is_in_our_schema_with_the_same_type() -> None:
    ours = _ours()
    checked = 0
    for table, columns in CONTRACT.items():
        assert table in ours, f"{table} missing"
        for column, ctype in columns.items():
            assert column in ours[table], f"{table}.{column} missing"
            assert ours[table][column] == ctype, f"{table}.{column}: {ours[table][column]}"
            checked += 1
    assert checked == sum(len(c) for c in CONTRACT.values()) > 200


def test_a_changed_type_would_be_seen() -> None:
    """The comparison is on normalised type text: a frozen UDT list is not a plain list."""
    ours = _ours()
    assert ours["sunbird_courses.assessment_aggregator"]["question"] == _norm(
        CONTRACT["sunbird_courses.assessment_aggregator"]["question"]
    )
    assert _norm("list< frozen <question>>") == "list<frozen<question>>"
    assert _norm("list<question>") != _norm("list<frozen<question>>")


def test_keyspace_names_and_prefix_are_applied() -> None:
    stmts = cql_statements(CassandraSettings(courses_keyspace="courses2"), keyspace_prefix="t1_")
    assert any("t1_courses2.user_enrolments" in s for s in stmts)
    assert not any("sunbird_courses." in s for s in stmts)
