-- Issue 11: a run whose quiesce did not go to plan (the agent did not answer, a freeze failed, the guest
-- had to be thawed) says so in an event of its own kind, besides runs.detail->'quiesce'.
-- Keeps every kind of 0002; a later migration that rewrites this check must keep 'quiesce'.
alter table events drop constraint events_kind_check;
alter table events add constraint events_kind_check
    check (kind in ('verify', 'retention', 'rebuild', 'damage', 'notify', 'checkpoint', 'drill', 'copy', 'chain', 'quiesce'));
