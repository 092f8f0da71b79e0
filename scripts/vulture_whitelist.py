"""Names vulture (``make lint``) would report as unused, and why each is used after all.

Listed by vulture --make-whitelist; every entry is a framework callback, a CLI command, a field
of a row or record read as a whole, or an API kept for tests and operators. Anything new that
vulture reports is dead code: delete it rather than list it here.
"""

# ruff: noqa
# type: ignore

from vulture.whitelist_utils import Whitelist

_ = Whitelist()

# Typer commands and the console entry point (called by Typer, not by our code)
_main  # unused function (lernflow/cli/app.py)
relation_rebuild  # unused function (lernflow/cli/caches.py)
user_cache_rebuild  # unused function (lernflow/cli/caches.py)
cert_keys_init  # unused function (lernflow/cli/cert.py)
cert_keys_export  # unused function (lernflow/cli/cert.py)
cert_verify  # unused function (lernflow/cli/cert.py)
cert_why  # unused function (lernflow/cli/cert.py)
cert_preview  # unused function (lernflow/cli/cert.py)
cert_revoke  # unused function (lernflow/cli/cert.py)
cert_status_list  # unused function (lernflow/cli/cert.py)
failed_show  # unused function (lernflow/cli/failed.py)
failed_requeue  # unused function (lernflow/cli/failed.py)
report_progress  # unused function (lernflow/cli/report.py)
report_response  # unused function (lernflow/cli/report.py)
report_userinfo  # unused function (lernflow/cli/report.py)
report_requests  # unused function (lernflow/cli/report.py)
stack_up  # unused function (lernflow/cli/stack.py)
stack_down  # unused function (lernflow/cli/stack.py)
stack_status  # unused function (lernflow/cli/stack.py)
schema_apply  # unused function (lernflow/cli/stack.py)
config_show  # unused function (lernflow/cli/stack.py)

# Framework callbacks: pydantic validators, Bytewax source/sink/operator methods and their
# parameters, WeasyPrint's URL fetcher signature, the plain-Bytewax build_flow entry points,
# attributes set on library objects (decimal context, zip info, driver statements), lazy
# package attributes
__getattr__  # unused function (certificates/__init__.py)
kwargs  # unused variable (certificates/render.py)
resource_type  # unused variable (certificates/render.py)
_._brokers_are_host_port  # unused method (config/settings.py)
_._valid_keyspace  # unused method (config/settings.py)
_._identifier  # unused method (config/settings.py)
_._valid_env  # unused method (config/settings.py)
_._tls_file  # unused method (config/settings.py)
_._security_consistent  # unused method (config/settings.py)
_._url  # unused method (config/settings.py)
_._domain  # unused method (config/settings.py)
build_flow  # unused function (flows/activity_aggregate_updater/flow.py)
build_flow  # unused function (flows/assessment_aggregator/flow.py)
_.prec  # unused attribute (flows/assessment_aggregator/formats.py)
build_flow  # unused function (flows/certificate_generator/flow.py)
build_flow  # unused function (flows/certificate_pre_processor/flow.py)
build_flow  # unused function (flows/relation_cache_updater/flow.py)
_.on_batch  # unused method (flows/shell.py)
_.snapshot  # unused method (flows/shell.py)
build_flow  # unused function (flows/user_cache_updater/flow.py)
_.compress_type  # unused attribute (reports/packaging.py)
_.fetch_size  # unused attribute (reports/sources.py)
_.write_batch  # unused method (sinks/processor_sink.py)
worker_count  # unused variable (sinks/processor_sink.py)
worker_index  # unused variable (sinks/processor_sink.py)
_.next_batch  # unused method (sources/kafka.py)
_.next_awake  # unused method (sources/kafka.py)
_.snapshot  # unused method (sources/kafka.py)
_.list_parts  # unused method (sources/kafka.py)
_.build_part  # unused method (sources/kafka.py)

# Fields of rows and records that are built or read as a whole (dataclass/asdict, JSON)
completedon_ms  # unused variable (flows/activity_aggregate_updater/rules.py)
assess_ts  # unused variable (flows/assessment_aggregator/rows.py)
logo  # unused variable (flows/certificate_generator/rules.py)
failed_at  # unused variable (lernflow/kernel/dlq.py)
requeued  # unused variable (lernflow/ops/failed.py)
skipped_not_envelope  # unused variable (lernflow/ops/failed.py)
committed_at  # unused variable (lernflow/ops/status.py)
interval_s  # unused variable (lernflow/ops/heartbeat.py)
events_in  # unused variable (lernflow/ops/heartbeat.py)
events_failed  # unused variable (lernflow/ops/heartbeat.py)
dt_file_created  # unused variable (reports/requests.py)

# Kept for tests and operators: settings as env (subprocess tests), the closed metric list,
# the producer's delivery count
_.to_env  # unused method (config/settings.py)
MetricName  # unused variable (lernflow/kernel/metrics.py)
ALL  # unused variable (lernflow/kernel/metrics.py)
_.delivered  # unused attribute (sinks/kafka_producer.py)
_.delivered  # unused attribute (sinks/kafka_producer.py)
_.cursor_position  # unused attribute (certificates/cairotext.py: CairoSVG reads it for the next text)

# a verifier's entry point: the offline JSON-LD document loader (docs/flows/certificate-generator.md#6)
document_loader  # unused function (certificates/documents.py)
