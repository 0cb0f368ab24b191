-- Issue 12: how each file of a point was read (changed-block tracking). read_mode: 'incremental' (only the blocks the
-- checkpoint's dirty bitmap and the qcow2 mapping allow), 'full', or 'safety-net' (read in full and checked against the
-- bitmap); null for points recorded before this migration. full_read_reason says why a file was not read incrementally;
-- clean_but_changed counts the blocks a safety-net read found changed although the bitmap called them clean (must be 0).
-- bytes_read (0001) is the bytes read from the source.
alter table restore_point_files add column read_mode text check (read_mode in ('incremental', 'full', 'safety-net'));
alter table restore_point_files add column full_read_reason text;
alter table restore_point_files add column clean_but_changed bigint not null default 0;
