-- 0001: the catalog's first schema. Applied in one transaction by CatalogMigrator.
-- Identity of a virtual machine is its libvirt UUID; its name and host may change over time,
-- so runs and restore points keep the name they had when they were made.

create table hosts (
    id          bigint generated always as identity primary key,
    name        text not null unique,
    first_seen  timestamptz not null default now(),
    last_seen   timestamptz not null default now()
);

create table domains (
    uuid        uuid primary key,
    name        text not null,
    host_id     bigint references hosts (id),
    first_seen  timestamptz not null default now(),
    last_seen   timestamptz not null default now()
);
create index domains_name on domains (name);

create table policies (
    id          bigint generated always as identity primary key,
    name        text not null unique,
    source_path text,
    digest      text,
    first_seen  timestamptz not null default now(),
    last_seen   timestamptz not null default now()
);

-- One row per backup attempt that got the domain lock. A refused attempt (lock busy) leaves no row.
create table runs (
    id               bigint generated always as identity primary key,
    domain_uuid      uuid not null references domains (uuid),
    domain_name      text not null,
    policy_id        bigint references policies (id),
    trigger          text not null,
    requested_by     text not null,
    host_id          bigint not null references hosts (id),
    pid              integer not null,
    process_start    text not null,
    started_at       timestamptz not null default now(),
    finished_at      timestamptz,
    state            text not null default 'running'
                     check (state in ('running', 'succeeded', 'failed', 'interrupted')),
    step             text not null default 'starting',
    progress_bytes   bigint not null default 0,
    progress_total   bigint,
    bytes_read       bigint not null default 0,
    bytes_written    bigint not null default 0,
    copy_time        interval,
    overlay_lifetime interval,
    commit_time      interval,
    consistency      text,
    error            text,
    check ((state = 'running') = (finished_at is null))
);
create index runs_running on runs (domain_uuid) where state = 'running';
create index runs_domain_started on runs (domain_uuid, started_at desc);
create index runs_started on runs (started_at desc);

-- A row exists only once the repository has made the point durable (inserted in the same
-- transaction that completes its run, after BackupSession.Commit returned).
create table restore_points (
    id           text primary key,
    domain_uuid  uuid not null references domains (uuid),
    domain_name  text not null,
    run_id       bigint unique references runs (id),
    repository   text not null,
    created_at   timestamptz not null,
    domain_xml   text,
    consistency  text,
    recorded_at  timestamptz not null default now()
);
create index restore_points_domain_created on restore_points (domain_uuid, created_at desc);
create index restore_points_created on restore_points (created_at desc);
create index restore_points_domain_name on restore_points (domain_name);

-- Per disk and chain file: file_key is the repository's key (`<disk>.<depth>`, 0 = top of the chain).
create table restore_point_files (
    point_id      text not null references restore_points (id) on delete cascade,
    file_key      text not null,
    disk          text not null,
    depth         integer not null,
    source_path   text not null,
    format        text not null,
    backing_file  text,
    virtual_size  bigint not null,
    file_size     bigint not null,
    digest        text not null,
    bytes_read    bigint not null default 0,
    bytes_written bigint not null default 0,
    primary key (point_id, file_key)
);

-- Verify, retention and rebuild outcomes. No foreign key to restore_points: an event about a
-- point outlives the point (retention deletes it).
create table events (
    id          bigint generated always as identity primary key,
    kind        text not null check (kind in ('verify', 'retention', 'rebuild')),
    at          timestamptz not null default now(),
    domain_uuid uuid references domains (uuid),
    point_id    text,
    host_id     bigint references hosts (id),
    ok          boolean not null,
    detail      text not null
);
create index events_kind_at on events (kind, at desc);
create index events_point on events (point_id, at desc);

-- Who holds a domain's advisory lock, for the "busy" message. Advisory, like the lock: a row is
-- trusted only when its backend_pid is the session that pg_locks shows holding the lock.
create table domain_locks (
    domain_uuid uuid primary key,
    host        text not null,
    pid         integer not null,
    run_id      bigint,
    since       timestamptz not null default now(),
    backend_pid integer not null
);
