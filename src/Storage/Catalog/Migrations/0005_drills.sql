-- Issue 11: restore drills and instant restores are runs (kind 'drill' / 'instant-restore', from 0002) of the
-- domain whose point they restore. They name that point here (a drill makes no point of its own, so
-- restore_points.run_id cannot say it), and a drill records its RTO: from the start of the restore to the
-- guest agent answering, or to the check command passing.
alter table runs add column point_id text;
alter table runs add column rto interval;
create index runs_point_kind on runs (point_id, kind, started_at desc) where point_id is not null;
