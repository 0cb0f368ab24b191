using Backupd.Daemon.Workflow;

namespace Backupd.Integration.Fixtures;

/// <summary>Runs test code after the snapshot, before and while the first file is copied.</summary>
internal sealed class HookedTarget(IBackupTarget inner) : IBackupTarget
{
    public Func<Task>? BeforeFirstFile { get; init; }
    public Func<Task>? DuringCopy { get; init; }
    public bool SawDuringCopy { get; private set; }
    private bool first = true;

    public string Description => inner.Description;
    public void EnsureWritable() => inner.EnsureWritable();
    public IBackupSession Begin(string groupId, string groupName, CancellationToken ct = default) => new Session(this, inner.Begin(groupId, groupName, ct));

    private sealed class Session(HookedTarget owner, IBackupSession inner) : IBackupSession
    {
        public Backupd.Storage.Repository.RestorePointInfo? Previous => inner.Previous;

        public Task<StoredFile> AddFileAsync(string fileKey, ChainImage image, IProgress<long>? progress, CancellationToken ct) =>
            AddFileAsync(fileKey, image, progress, null, ct);

        public async Task<StoredFile> AddFileAsync(string fileKey, ChainImage image, IProgress<long>? progress, Backupd.Storage.ChangedBlocks.ChangedBlockRead? changed, CancellationToken ct)
        {
            if (owner.first)
            {
                owner.first = false;
                if (owner.BeforeFirstFile is not null) await owner.BeforeFirstFile();
                if (owner.DuringCopy is not null)
                {
                    var during = owner.DuringCopy;
                    var fired = false;
                    progress = new Hook(progress, () =>
                    {
                        if (fired) return;
                        fired = true;
                        during().GetAwaiter().GetResult(); // the copy waits on its own thread while the guest writes
                        owner.SawDuringCopy = true;
                    });
                }
            }
            return await inner.AddFileAsync(fileKey, image, progress, changed, ct);
        }

        public void AttachMetadata(string name, string content) => inner.AttachMetadata(name, content);
        public Backupd.Storage.Repository.RestorePointInfo Commit() => inner.Commit();
        public void Dispose() => inner.Dispose();
    }

    private sealed class Hook(IProgress<long>? inner, Action once) : IProgress<long>
    {
        public void Report(long value)
        {
            once();
            inner?.Report(value);
        }
    }
}
