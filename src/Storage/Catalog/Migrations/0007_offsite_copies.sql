-- Issue 15: where each restore point has copies. One row per point and copy target, written in the
-- transaction that completes the copy's run (runs.kind = 'copy'), so a row means the target holds the
-- point's published index. No foreign key to restore_points: a copy outlives the local point (local
-- retention deletes that while the copy keeps its own retention); `prune --target` removes the row.
create table point_copies (
    point_id     text not null,
    target       text not null,
    domain_uuid  uuid not null references domains (uuid),
    domain_name  text not null,
    point_created_at timestamptz not null,
    run_id       bigint references runs (id),
    copied_at    timestamptz not null default now(),
    chunks       bigint not null default 0,
    chunks_sent  bigint not null default 0,
    bytes_sent   bigint not null default 0,
    primary key (point_id, target)
);
create index point_copies_target on point_copies (target, point_created_at desc);
create index point_copies_domain on point_copies (domain_uuid, point_created_at desc);
