-- Apache Airflow 3.2 metadata database, PostgreSQL, alembic revision 1d6611b6ab7c
-- ("Add bundle_name to callback table", airflow_version 3.2.0, the head of Airflow 3.2.0).
--
-- Only the tables taskgate reads or writes, and the parents their foreign keys need.
-- Written by hand from Airflow's SQLAlchemy models (airflow-core/src/airflow/models/*.py)
-- and migrations (airflow-core/src/airflow/migrations/versions/*.py) at that revision:
-- column names, PostgreSQL types as SQLAlchemy renders them (UtcDateTime = timestamptz,
-- StringID = varchar(250), ExtendedJSON and JSON = json, JSON().with_variant(JSONB) = jsonb,
-- PickleType = bytea, Uuid/UUIDType/postgresql.UUID = uuid), NOT NULLs (including those of
-- migration 888b59e02a5b "Fix migration file ORM inconsistencies"), server-side defaults,
-- keys, ON DELETE actions, unique constraints and indexes with Airflow's names.
-- Defaults that exist only in Python (executor_config, try_number, pool_slots, updated_at,
-- timestamps...) are NOT here: Airflow's database has none for them either, so every insert
-- must supply them, as internal/pgtest's fixtures do.
-- Read from the 3.2.0 migrations in particular: 888b59e02a5b (task_instance try_number,
-- max_tries, hostname, unixname, queue, priority_weight, custom_operator_name and
-- executor_config NOT NULL; dag_run state, log_template_id, updated_at NOT NULL; variable
-- and connection flags NOT NULL), a5a3e5eb9b8d (external_executor_id text),
-- 658517c60c7f (task_instance.next_trigger_id), 665854ef0536 (asset partitioning).
-- Not covered by a migration read here, taken from the newest stored models: the team_name
-- columns and the dag table's 3.2 columns; see README.md for checking them, and the whole file,
-- against `airflow db migrate`.

CREATE TABLE alembic_version (
    version_num varchar(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO alembic_version (version_num) VALUES ('1d6611b6ab7c');

CREATE TABLE log_template (
    id serial NOT NULL,
    filename text NOT NULL,
    elasticsearch_id text NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT log_template_pkey PRIMARY KEY (id)
);
-- `airflow db migrate` records the configured log templates (utils/db.py
-- synchronize_log_template); these are Airflow 3.2's defaults. New dag_run rows
-- point at the newest row (DagRun.log_template_id defaults to max(id)).
INSERT INTO log_template (filename, elasticsearch_id, created_at) VALUES (
    'dag_id={{ ti.dag_id }}/run_id={{ ti.run_id }}/task_id={{ ti.task_id }}/{% if ti.map_index >= 0 %}map_index={{ ti.map_index }}/{% endif %}attempt={{ try_number|default(ti.try_number) }}.log',
    '{dag_id}-{task_id}-{run_id}-{map_index}-{try_number}',
    '2026-01-01 00:00:00+00'
);

CREATE TABLE dag_bundle (
    name varchar(250) NOT NULL,
    active boolean,
    version varchar(200),
    last_refreshed timestamptz,
    signed_url_template varchar(200),
    template_params json,
    CONSTRAINT dag_bundle_pkey PRIMARY KEY (name)
);

-- Parent of dag_version, dag_run's runs and the asset references; taskgate reads none of
-- its columns. bundle_name is nullable at 1d6611b6ab7c: 3.2.1's 35ab6b577738 makes it NOT NULL.
CREATE TABLE dag (
    dag_id varchar(250) NOT NULL,
    is_paused boolean NOT NULL,
    is_stale boolean NOT NULL,
    exceeds_max_non_backfill boolean NOT NULL DEFAULT false,
    last_parsed_time timestamptz,
    last_parse_duration double precision,
    last_expired timestamptz,
    fileloc varchar(2000),
    relative_fileloc varchar(2000),
    bundle_name varchar(250),
    bundle_version varchar(200),
    owners varchar(2000),
    dag_display_name varchar(2000),
    description text,
    timetable_type varchar(255) NOT NULL,
    timetable_summary text,
    timetable_description varchar(1000),
    timetable_partitioned boolean NOT NULL DEFAULT false,
    asset_expression json,
    deadline json,
    max_active_tasks integer NOT NULL,
    max_active_runs integer,
    max_consecutive_failed_dag_runs integer NOT NULL,
    has_task_concurrency_limits boolean NOT NULL,
    has_import_errors boolean NOT NULL DEFAULT false,
    fail_fast boolean NOT NULL DEFAULT false,
    allowed_run_types json,
    next_dagrun timestamptz,
    next_dagrun_data_interval_start timestamptz,
    next_dagrun_data_interval_end timestamptz,
    next_dagrun_partition_key varchar(255),
    next_dagrun_partition_date timestamptz,
    next_dagrun_create_after timestamptz,
    CONSTRAINT dag_pkey PRIMARY KEY (dag_id),
    CONSTRAINT dag_bundle_name_fkey FOREIGN KEY (bundle_name) REFERENCES dag_bundle (name)
);
CREATE INDEX idx_next_dagrun_create_after ON dag (next_dagrun_create_after);

CREATE TABLE dag_version (
    id uuid NOT NULL,
    version_number integer NOT NULL,
    dag_id varchar(250) NOT NULL,
    bundle_name varchar(250),
    bundle_version varchar(250),
    created_at timestamptz NOT NULL,
    last_updated timestamptz NOT NULL,
    CONSTRAINT dag_version_pkey PRIMARY KEY (id),
    CONSTRAINT dag_version_dag_id_fkey FOREIGN KEY (dag_id) REFERENCES dag (dag_id) ON DELETE CASCADE,
    CONSTRAINT dag_id_v_name_v_number_unique_constraint UNIQUE (dag_id, version_number)
);

-- The DAG processor's serialized DAGs (models/serialized_dag.py): taskgate reads a partitioned
-- DAG's timetable from the latest row (created_at) of the DAG, `data` or, with [core]
-- compress_serialized_dags, zlib-compressed JSON in `data_compressed`.
CREATE TABLE serialized_dag (
    id uuid NOT NULL,
    dag_id varchar(250) NOT NULL,
    data json,
    data_compressed bytea,
    created_at timestamptz NOT NULL,
    last_updated timestamptz NOT NULL,
    dag_hash varchar(32) NOT NULL,
    dag_version_id uuid NOT NULL,
    CONSTRAINT serialized_dag_pkey PRIMARY KEY (id),
    CONSTRAINT serialized_dag_dag_version_id_fkey FOREIGN KEY (dag_version_id) REFERENCES dag_version (id) ON DELETE CASCADE,
    CONSTRAINT serialized_dag_dag_version_id_uq UNIQUE (dag_version_id)
);

-- A DAG version's source (models/dagcode.py), written by a DAG processor's published parse
-- result.
CREATE TABLE dag_code (
    id uuid NOT NULL,
    dag_id varchar(250) NOT NULL,
    fileloc varchar(2000) NOT NULL,
    created_at timestamptz NOT NULL,
    last_updated timestamptz NOT NULL,
    source_code text NOT NULL,
    source_code_hash varchar(32) NOT NULL,
    dag_version_id uuid NOT NULL,
    CONSTRAINT dag_code_pkey PRIMARY KEY (id),
    CONSTRAINT dag_code_dag_version_id_fkey FOREIGN KEY (dag_version_id) REFERENCES dag_version (id) ON DELETE CASCADE,
    CONSTRAINT dag_code_dag_version_id_uq UNIQUE (dag_version_id)
);

-- A file's import errors (models/errors.py ParseImportError) and a DAG's warnings
-- (models/dagwarning.py), written by a published parse result.
CREATE TABLE import_error (
    id serial NOT NULL,
    "timestamp" timestamptz,
    filename varchar(1024),
    bundle_name varchar(250),
    stacktrace text,
    CONSTRAINT import_error_pkey PRIMARY KEY (id)
);

CREATE TABLE dag_warning (
    dag_id varchar(250) NOT NULL,
    warning_type varchar(50) NOT NULL,
    message text NOT NULL,
    "timestamp" timestamptz NOT NULL,
    CONSTRAINT dag_warning_pkey PRIMARY KEY (dag_id, warning_type),
    CONSTRAINT dcw_dag_id_fkey FOREIGN KEY (dag_id) REFERENCES dag (dag_id) ON DELETE CASCADE
);

CREATE TABLE backfill (
    id serial NOT NULL,
    dag_id varchar(250) NOT NULL,
    from_date timestamptz NOT NULL,
    to_date timestamptz NOT NULL,
    dag_run_conf json NOT NULL,
    is_paused boolean,
    reprocess_behavior varchar(250) NOT NULL,
    max_active_runs integer NOT NULL,
    created_at timestamptz NOT NULL,
    completed_at timestamptz,
    updated_at timestamptz NOT NULL,
    triggering_user_name varchar(512),
    CONSTRAINT backfill_pkey PRIMARY KEY (id)
);

CREATE TABLE dag_run (
    id serial NOT NULL,
    dag_id varchar(250) NOT NULL,
    queued_at timestamptz,
    logical_date timestamptz,
    start_date timestamptz,
    end_date timestamptz,
    state varchar(50) NOT NULL,
    run_id varchar(250) NOT NULL,
    creating_job_id integer,
    run_type varchar(50) NOT NULL,
    triggered_by varchar(50),
    triggering_user_name varchar(512),
    conf jsonb,
    data_interval_start timestamptz,
    data_interval_end timestamptz,
    run_after timestamptz NOT NULL,
    last_scheduling_decision timestamptz,
    log_template_id integer NOT NULL,
    created_at timestamptz,
    updated_at timestamptz NOT NULL,
    clear_number integer NOT NULL DEFAULT 0,
    backfill_id integer,
    bundle_version varchar(250),
    scheduled_by_job_id integer,
    context_carrier json,
    span_status varchar(250) NOT NULL DEFAULT 'not_started',
    created_dag_version_id uuid,
    partition_key varchar(250),
    partition_date timestamptz,
    CONSTRAINT dag_run_pkey PRIMARY KEY (id),
    CONSTRAINT dag_run_dag_id_run_id_key UNIQUE (dag_id, run_id),
    CONSTRAINT dag_run_dag_id_logical_date_key UNIQUE (dag_id, logical_date),
    CONSTRAINT task_instance_log_template_id_fkey FOREIGN KEY (log_template_id) REFERENCES log_template (id),
    CONSTRAINT dag_run_backfill_id_fkey FOREIGN KEY (backfill_id) REFERENCES backfill (id),
    CONSTRAINT created_dag_version_id_fkey FOREIGN KEY (created_dag_version_id) REFERENCES dag_version (id) ON DELETE SET NULL
);
CREATE INDEX dag_id_state ON dag_run (dag_id, state);
CREATE INDEX idx_dag_run_dag_id ON dag_run (dag_id);
CREATE INDEX idx_dag_run_run_after ON dag_run (run_after);
CREATE INDEX idx_dag_run_running_dags ON dag_run (state, dag_id) WHERE state = 'running';
CREATE INDEX idx_dag_run_queued_dags ON dag_run (state, dag_id) WHERE state = 'queued';

-- Multi-team mode (3.2): team_name on trigger, variable and connection refers to it.
CREATE TABLE team (
    name varchar(50) NOT NULL,
    CONSTRAINT team_pkey PRIMARY KEY (name)
);

-- The team of a dag bundle in multi-team mode (models/team.py
-- dag_bundle_team_association_table): the dag run's team_name in a task's /run context.
CREATE TABLE dag_bundle_team (
    dag_bundle_name varchar(250) NOT NULL,
    team_name varchar(50) NOT NULL,
    CONSTRAINT dag_bundle_team_pkey PRIMARY KEY (dag_bundle_name, team_name),
    CONSTRAINT dag_bundle_team_dag_bundle_name_fkey FOREIGN KEY (dag_bundle_name) REFERENCES dag_bundle (name) ON DELETE CASCADE,
    CONSTRAINT dag_bundle_team_team_name_fkey FOREIGN KEY (team_name) REFERENCES team (name) ON DELETE CASCADE
);
CREATE UNIQUE INDEX idx_dag_bundle_team_dag_bundle_name ON dag_bundle_team (dag_bundle_name);
CREATE INDEX idx_dag_bundle_team_team_name ON dag_bundle_team (team_name);

-- A DAG's tags (models/dag.py DagTag): GET /execution/dags/{dag_id} lists them.
CREATE TABLE dag_tag (
    name varchar(100) NOT NULL,
    dag_id varchar(250) NOT NULL,
    CONSTRAINT dag_tag_pkey PRIMARY KEY (name, dag_id),
    CONSTRAINT dag_tag_dag_id_fkey FOREIGN KEY (dag_id) REFERENCES dag (dag_id) ON DELETE CASCADE
);

CREATE TABLE trigger (
    id serial NOT NULL,
    classpath varchar(1000) NOT NULL,
    kwargs text NOT NULL,
    created_date timestamptz NOT NULL,
    triggerer_id integer,
    queue varchar(256),
    team_name varchar(50),
    CONSTRAINT trigger_pkey PRIMARY KEY (id),
    CONSTRAINT trigger_team_name_fkey FOREIGN KEY (team_name) REFERENCES team (name) ON DELETE SET NULL
);
CREATE INDEX idx_trigger_team_name ON trigger (team_name);

-- Callbacks (3.1, migration bdd599ff8039, and the columns the 3.2 model
-- airflow/models/callback.py declares: type, fetch_method, priority_weight,
-- created_at, trigger_id). Read from the model, to check against a real 3.2.
CREATE TABLE callback (
    id uuid NOT NULL,
    type varchar(20) NOT NULL,
    fetch_method varchar(20) NOT NULL,
    data json NOT NULL,
    state varchar(10),
    output text,
    priority_weight integer NOT NULL,
    created_at timestamptz NOT NULL,
    trigger_id integer,
    CONSTRAINT callback_pkey PRIMARY KEY (id),
    CONSTRAINT callback_trigger_id_fkey FOREIGN KEY (trigger_id) REFERENCES trigger (id)
);

CREATE TABLE task_instance (
    id uuid NOT NULL,
    task_id varchar(250) NOT NULL,
    dag_id varchar(250) NOT NULL,
    run_id varchar(250) NOT NULL,
    map_index integer NOT NULL DEFAULT -1,
    start_date timestamptz,
    end_date timestamptz,
    duration double precision,
    state varchar(20),
    try_number integer NOT NULL,
    max_tries integer NOT NULL DEFAULT -1,
    hostname varchar(1000) NOT NULL,
    unixname varchar(1000) NOT NULL,
    pool varchar(256) NOT NULL,
    pool_slots integer NOT NULL,
    queue varchar(256) NOT NULL,
    priority_weight integer NOT NULL,
    operator varchar(1000),
    custom_operator_name varchar(1000) NOT NULL,
    queued_dttm timestamptz,
    scheduled_dttm timestamptz,
    queued_by_job_id integer,
    last_heartbeat_at timestamptz,
    pid integer,
    executor varchar(1000),
    executor_config bytea NOT NULL,
    updated_at timestamptz,
    rendered_map_index varchar(250),
    context_carrier json,
    span_status varchar(250) NOT NULL DEFAULT 'not_started',
    external_executor_id text,
    trigger_id integer,
    trigger_timeout timestamptz,
    next_method varchar(1000),
    next_kwargs json,
    task_display_name varchar(2000),
    dag_version_id uuid NOT NULL,
    next_trigger_id integer,
    CONSTRAINT task_instance_pkey PRIMARY KEY (id),
    CONSTRAINT task_instance_composite_key UNIQUE (dag_id, task_id, run_id, map_index),
    CONSTRAINT task_instance_trigger_id_fkey FOREIGN KEY (trigger_id) REFERENCES trigger (id) ON DELETE CASCADE,
    CONSTRAINT task_instance_dag_run_fkey FOREIGN KEY (dag_id, run_id) REFERENCES dag_run (dag_id, run_id) ON DELETE CASCADE,
    CONSTRAINT task_instance_dag_version_id_fkey FOREIGN KEY (dag_version_id) REFERENCES dag_version (id) ON DELETE RESTRICT
);
CREATE INDEX ti_dag_state ON task_instance (dag_id, state);
CREATE INDEX ti_dag_run ON task_instance (dag_id, run_id);
CREATE INDEX ti_state ON task_instance (state);
CREATE INDEX ti_state_lkp ON task_instance (dag_id, task_id, run_id, state);
CREATE INDEX ti_pool ON task_instance (pool, state, priority_weight);
CREATE INDEX ti_trigger_id ON task_instance (trigger_id);
CREATE INDEX ti_heartbeat ON task_instance (last_heartbeat_at);

CREATE TABLE task_instance_history (
    task_instance_id uuid NOT NULL,
    task_id varchar(250) NOT NULL,
    dag_id varchar(250) NOT NULL,
    run_id varchar(250) NOT NULL,
    map_index integer NOT NULL DEFAULT -1,
    try_number integer NOT NULL,
    start_date timestamptz,
    end_date timestamptz,
    duration double precision,
    state varchar(20),
    max_tries integer DEFAULT -1,
    hostname varchar(1000),
    unixname varchar(1000),
    pool varchar(256) NOT NULL,
    pool_slots integer NOT NULL,
    queue varchar(256),
    priority_weight integer,
    operator varchar(1000),
    custom_operator_name varchar(1000),
    queued_dttm timestamptz,
    scheduled_dttm timestamptz,
    queued_by_job_id integer,
    pid integer,
    executor varchar(1000),
    executor_config bytea,
    updated_at timestamptz,
    rendered_map_index varchar(250),
    context_carrier json,
    span_status varchar(250) NOT NULL DEFAULT 'not_started',
    external_executor_id text,
    trigger_id integer,
    trigger_timeout timestamp without time zone,
    next_method varchar(1000),
    next_kwargs json,
    task_display_name varchar(2000),
    dag_version_id uuid,
    CONSTRAINT task_instance_history_pkey PRIMARY KEY (task_instance_id),
    CONSTRAINT task_instance_history_dtrt_uq UNIQUE (dag_id, task_id, run_id, map_index, try_number),
    CONSTRAINT task_instance_history_ti_fkey FOREIGN KEY (dag_id, task_id, run_id, map_index)
        REFERENCES task_instance (dag_id, task_id, run_id, map_index) ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX idx_tih_dag_run ON task_instance_history (dag_id, run_id);

CREATE TABLE task_reschedule (
    id serial NOT NULL,
    ti_id uuid NOT NULL,
    start_date timestamptz NOT NULL,
    end_date timestamptz NOT NULL,
    duration integer NOT NULL,
    reschedule_date timestamptz NOT NULL,
    CONSTRAINT task_reschedule_pkey PRIMARY KEY (id),
    CONSTRAINT task_reschedule_ti_fkey FOREIGN KEY (ti_id) REFERENCES task_instance (id) ON DELETE CASCADE
);

CREATE TABLE xcom (
    dag_run_id integer NOT NULL,
    task_id varchar(250) NOT NULL,
    map_index integer NOT NULL DEFAULT -1,
    key varchar(512) NOT NULL,
    dag_id varchar(250) NOT NULL,
    run_id varchar(250) NOT NULL,
    value jsonb,
    timestamp timestamptz NOT NULL,
    CONSTRAINT xcom_pkey PRIMARY KEY (dag_run_id, task_id, map_index, key),
    CONSTRAINT xcom_task_instance_fkey FOREIGN KEY (dag_id, task_id, run_id, map_index)
        REFERENCES task_instance (dag_id, task_id, run_id, map_index) ON DELETE CASCADE
);
CREATE INDEX idx_xcom_key ON xcom (key);
CREATE INDEX idx_xcom_task_instance ON xcom (dag_id, task_id, run_id, map_index);

CREATE TABLE rendered_task_instance_fields (
    dag_id varchar(250) NOT NULL,
    task_id varchar(250) NOT NULL,
    run_id varchar(250) NOT NULL,
    map_index integer NOT NULL DEFAULT -1,
    rendered_fields json NOT NULL,
    k8s_pod_yaml json,
    CONSTRAINT rendered_task_instance_fields_pkey PRIMARY KEY (dag_id, task_id, run_id, map_index),
    CONSTRAINT rtif_ti_fkey FOREIGN KEY (dag_id, task_id, run_id, map_index)
        REFERENCES task_instance (dag_id, task_id, run_id, map_index) ON DELETE CASCADE
);

CREATE TABLE task_map (
    dag_id varchar(250) NOT NULL,
    task_id varchar(250) NOT NULL,
    run_id varchar(250) NOT NULL,
    map_index integer NOT NULL,
    length integer NOT NULL,
    keys json,
    CONSTRAINT task_map_pkey PRIMARY KEY (dag_id, task_id, run_id, map_index),
    CONSTRAINT task_map_length_not_negative CHECK (length >= 0),
    CONSTRAINT task_map_task_instance_fkey FOREIGN KEY (dag_id, task_id, run_id, map_index)
        REFERENCES task_instance (dag_id, task_id, run_id, map_index) ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE TABLE hitl_detail (
    ti_id uuid NOT NULL,
    options json NOT NULL,
    subject text NOT NULL,
    body text,
    defaults json,
    multiple boolean,
    params json NOT NULL,
    assignees json,
    created_at timestamptz NOT NULL,
    responded_at timestamptz,
    responded_by json,
    chosen_options json,
    params_input json NOT NULL,
    CONSTRAINT hitl_detail_pkey PRIMARY KEY (ti_id),
    CONSTRAINT hitl_detail_ti_fkey FOREIGN KEY (ti_id) REFERENCES task_instance (id) ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE TABLE variable (
    id serial NOT NULL,
    key varchar(250) NOT NULL,
    val text NOT NULL,
    description text,
    is_encrypted boolean NOT NULL,
    team_name varchar(50),
    CONSTRAINT variable_pkey PRIMARY KEY (id),
    CONSTRAINT variable_key_uq UNIQUE (key),
    CONSTRAINT variable_team_name_fkey FOREIGN KEY (team_name) REFERENCES team (name) ON DELETE SET NULL
);

CREATE TABLE connection (
    id serial NOT NULL,
    conn_id varchar(250) NOT NULL,
    conn_type varchar(500) NOT NULL,
    description text,
    host varchar(500),
    schema varchar(500),
    login text,
    password text,
    port integer,
    is_encrypted boolean NOT NULL,
    is_extra_encrypted boolean NOT NULL,
    extra text,
    team_name varchar(50),
    CONSTRAINT connection_pkey PRIMARY KEY (id),
    CONSTRAINT connection_conn_id_uq UNIQUE (conn_id),
    CONSTRAINT connection_team_name_fkey FOREIGN KEY (team_name) REFERENCES team (name) ON DELETE SET NULL
);

CREATE TABLE revoked_token (
    jti varchar(32) NOT NULL,
    exp timestamptz NOT NULL,
    CONSTRAINT revoked_token_pkey PRIMARY KEY (jti)
);
CREATE INDEX idx_revoked_token_exp ON revoked_token (exp);

-- Assets: what the success route writes (events, outlet references, the queue of runs
-- an event triggers) and what it reads (active assets, aliases, the dags they schedule).

CREATE TABLE asset (
    id serial NOT NULL,
    name varchar(1500) NOT NULL,
    uri varchar(1500) NOT NULL,
    "group" varchar(1500) NOT NULL,
    extra json NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT asset_pkey PRIMARY KEY (id)
);
CREATE UNIQUE INDEX idx_asset_name_uri_unique ON asset (name, uri);

CREATE TABLE asset_active (
    name varchar(1500) NOT NULL,
    uri varchar(1500) NOT NULL,
    CONSTRAINT asset_active_pkey PRIMARY KEY (name, uri),
    CONSTRAINT asset_active_asset_name_uri_fkey FOREIGN KEY (name, uri) REFERENCES asset (name, uri) ON DELETE CASCADE
);
CREATE UNIQUE INDEX idx_asset_active_name_unique ON asset_active (name);
CREATE UNIQUE INDEX idx_asset_active_uri_unique ON asset_active (uri);

CREATE TABLE asset_alias (
    id serial NOT NULL,
    name varchar(1500) NOT NULL,
    "group" varchar(1500) NOT NULL,
    CONSTRAINT asset_alias_pkey PRIMARY KEY (id)
);
CREATE UNIQUE INDEX idx_asset_alias_name_unique ON asset_alias (name);

CREATE TABLE asset_alias_asset (
    alias_id integer NOT NULL,
    asset_id integer NOT NULL,
    CONSTRAINT asset_alias_asset_pkey PRIMARY KEY (alias_id, asset_id),
    CONSTRAINT asset_alias_asset_alias_id_fkey FOREIGN KEY (alias_id) REFERENCES asset_alias (id) ON DELETE CASCADE,
    CONSTRAINT asset_alias_asset_asset_id_fkey FOREIGN KEY (asset_id) REFERENCES asset (id) ON DELETE CASCADE
);
CREATE INDEX idx_asset_alias_asset_alias_id ON asset_alias_asset (alias_id);
CREATE INDEX idx_asset_alias_asset_asset_id ON asset_alias_asset (asset_id);

CREATE TABLE asset_event (
    id serial NOT NULL,
    asset_id integer NOT NULL,
    extra json NOT NULL,
    source_task_id varchar(250),
    source_dag_id varchar(250),
    source_run_id varchar(250),
    source_map_index integer DEFAULT -1,
    timestamp timestamptz NOT NULL,
    partition_key varchar(250),
    CONSTRAINT asset_event_pkey PRIMARY KEY (id)
);
CREATE INDEX idx_asset_id_timestamp ON asset_event (asset_id, timestamp);

CREATE TABLE asset_alias_asset_event (
    alias_id integer NOT NULL,
    event_id integer NOT NULL,
    CONSTRAINT asset_alias_asset_event_pkey PRIMARY KEY (alias_id, event_id),
    CONSTRAINT asset_alias_asset_event_alias_id_fkey FOREIGN KEY (alias_id) REFERENCES asset_alias (id) ON DELETE CASCADE,
    CONSTRAINT asset_alias_asset_event_event_id_fkey FOREIGN KEY (event_id) REFERENCES asset_event (id) ON DELETE CASCADE
);
CREATE INDEX idx_asset_alias_asset_event_alias_id ON asset_alias_asset_event (alias_id);
CREATE INDEX idx_asset_alias_asset_event_event_id ON asset_alias_asset_event (event_id);

CREATE TABLE dagrun_asset_event (
    dag_run_id integer NOT NULL,
    event_id integer NOT NULL,
    CONSTRAINT dagrun_asset_event_pkey PRIMARY KEY (dag_run_id, event_id),
    CONSTRAINT dagrun_asset_event_dag_run_id_fkey FOREIGN KEY (dag_run_id) REFERENCES dag_run (id) ON DELETE CASCADE,
    CONSTRAINT dagrun_asset_event_event_id_fkey FOREIGN KEY (event_id) REFERENCES asset_event (id) ON DELETE CASCADE
);
CREATE INDEX idx_dagrun_asset_events_dag_run_id ON dagrun_asset_event (dag_run_id);
CREATE INDEX idx_dagrun_asset_events_event_id ON dagrun_asset_event (event_id);

CREATE TABLE dag_schedule_asset_reference (
    asset_id integer NOT NULL,
    dag_id varchar(250) NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT dsar_pkey PRIMARY KEY (asset_id, dag_id),
    CONSTRAINT dsar_asset_fkey FOREIGN KEY (asset_id) REFERENCES asset (id) ON DELETE CASCADE,
    CONSTRAINT dsar_dag_id_fkey FOREIGN KEY (dag_id) REFERENCES dag (dag_id) ON DELETE CASCADE
);
CREATE INDEX idx_dag_schedule_asset_reference_dag_id ON dag_schedule_asset_reference (dag_id);

CREATE TABLE dag_schedule_asset_alias_reference (
    alias_id integer NOT NULL,
    dag_id varchar(250) NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT dsaar_pkey PRIMARY KEY (alias_id, dag_id),
    CONSTRAINT dsaar_asset_alias_fkey FOREIGN KEY (alias_id) REFERENCES asset_alias (id) ON DELETE CASCADE,
    CONSTRAINT dsaar_dag_id_fkey FOREIGN KEY (dag_id) REFERENCES dag (dag_id) ON DELETE CASCADE
);
CREATE INDEX idx_dag_schedule_asset_alias_reference_dag_id ON dag_schedule_asset_alias_reference (dag_id);

CREATE TABLE dag_schedule_asset_name_reference (
    name varchar(1500) NOT NULL,
    dag_id varchar(250) NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT dsanr_pkey PRIMARY KEY (name, dag_id),
    CONSTRAINT dsanr_dag_id_fkey FOREIGN KEY (dag_id) REFERENCES dag (dag_id) ON DELETE CASCADE
);
CREATE INDEX idx_dag_schedule_asset_name_reference_dag_id ON dag_schedule_asset_name_reference (dag_id);

CREATE TABLE dag_schedule_asset_uri_reference (
    uri varchar(1500) NOT NULL,
    dag_id varchar(250) NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT dsaur_pkey PRIMARY KEY (uri, dag_id),
    CONSTRAINT dsaur_dag_id_fkey FOREIGN KEY (dag_id) REFERENCES dag (dag_id) ON DELETE CASCADE
);
CREATE INDEX idx_dag_schedule_asset_uri_reference_dag_id ON dag_schedule_asset_uri_reference (dag_id);

CREATE TABLE task_outlet_asset_reference (
    asset_id integer NOT NULL,
    dag_id varchar(250) NOT NULL,
    task_id varchar(250) NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT toar_pkey PRIMARY KEY (asset_id, dag_id, task_id),
    CONSTRAINT toar_asset_fkey FOREIGN KEY (asset_id) REFERENCES asset (id) ON DELETE CASCADE,
    CONSTRAINT toar_dag_id_fkey FOREIGN KEY (dag_id) REFERENCES dag (dag_id) ON DELETE CASCADE
);
CREATE INDEX idx_task_outlet_asset_reference_dag_id ON task_outlet_asset_reference (dag_id);

CREATE TABLE task_inlet_asset_reference (
    asset_id integer NOT NULL,
    dag_id varchar(250) NOT NULL,
    task_id varchar(250) NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT tiar_pkey PRIMARY KEY (asset_id, dag_id, task_id),
    CONSTRAINT tiar_asset_fkey FOREIGN KEY (asset_id) REFERENCES asset (id) ON DELETE CASCADE,
    CONSTRAINT tiar_dag_id_fkey FOREIGN KEY (dag_id) REFERENCES dag (dag_id) ON DELETE CASCADE
);
CREATE INDEX idx_task_inlet_asset_reference_dag_id ON task_inlet_asset_reference (dag_id);

CREATE TABLE asset_dag_run_queue (
    asset_id integer NOT NULL,
    target_dag_id varchar(250) NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT assetdagrunqueue_pkey PRIMARY KEY (asset_id, target_dag_id),
    CONSTRAINT adrq_asset_fkey FOREIGN KEY (asset_id) REFERENCES asset (id) ON DELETE CASCADE,
    CONSTRAINT adrq_dag_fkey FOREIGN KEY (target_dag_id) REFERENCES dag (dag_id) ON DELETE CASCADE
);
CREATE INDEX idx_asset_dag_run_queue_target_dag_id ON asset_dag_run_queue (target_dag_id);

-- Partitioned assets (3.2, migration 665854ef0536): an event with a partition_key queues the
-- partitioned dags it schedules here instead of in asset_dag_run_queue.
CREATE TABLE asset_partition_dag_run (
    id serial NOT NULL,
    target_dag_id varchar(250) NOT NULL,
    created_dag_run_id integer,
    partition_key varchar(250) NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT asset_partition_dag_run_pkey PRIMARY KEY (id),
    CONSTRAINT apdr_created_dag_run_id_fkey FOREIGN KEY (created_dag_run_id) REFERENCES dag_run (id) ON DELETE CASCADE
);

CREATE TABLE partitioned_asset_key_log (
    id serial NOT NULL,
    asset_id integer NOT NULL,
    asset_event_id integer NOT NULL,
    asset_partition_dag_run_id integer NOT NULL,
    source_partition_key varchar(250) NOT NULL,
    target_dag_id varchar(250) NOT NULL,
    target_partition_key varchar(250) NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT partitioned_asset_key_log_pkey PRIMARY KEY (id)
);

-- The audit log (models/log.py; try_number and idx_log_task_instance from 41b3bc7c0272).
-- Every column is nullable as the model declares them; written by the Execution API's /run
-- and /state routes.
CREATE TABLE log (
    id serial NOT NULL,
    dttm timestamptz,
    dag_id varchar(250),
    task_id varchar(250),
    map_index integer,
    event varchar(60),
    logical_date timestamptz,
    run_id varchar(250),
    owner varchar(500),
    owner_display_name varchar(500),
    extra text,
    try_number integer,
    CONSTRAINT log_pkey PRIMARY KEY (id)
);
CREATE INDEX idx_log_dttm ON log (dttm);
CREATE INDEX idx_log_event ON log (event);
CREATE INDEX idx_log_task_instance ON log (dag_id, task_id, run_id, map_index, try_number);
