-- Runs are no longer only backups: chain maintenance, restore drills, instant restores and
-- offsite copies take the same domain lock and report progress the same way, so they share the
-- runs table and say what they are in `kind`. `detail` carries what only one kind has (per-disk
-- read mode of an incremental, a drill's RTO, a copy's target), as JSON the CLI prints as is.
alter table runs add column kind text not null default 'backup'
    check (kind in ('backup', 'chain', 'move-disk', 'drill', 'instant-restore', 'copy'));
alter table runs add column detail jsonb;
create index runs_kind_started on runs (kind, started_at desc);

-- Events grow with the same streams: damage found by a scrub, a notification sent or failed,
-- a checkpoint rotated or dropped.
alter table events drop constraint events_kind_check;
alter table events add constraint events_kind_check
    check (kind in ('verify', 'retention', 'rebuild', 'damage', 'notify', 'checkpoint', 'drill', 'copy', 'chain'));
