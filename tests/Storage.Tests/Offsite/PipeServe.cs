using System.IO.Pipes;
using Backupd.Storage.Offsite;

namespace Backupd.Storage.Tests.Offsite;

/// <summary>A <see cref="ChunkServer"/> over <paramref name="target"/> on a thread, its client connected through two anonymous pipes.</summary>
internal static class PipeServe
{
    public static RemoteChunkStore Start(string target, bool appendOnly, out Thread server)
    {
        var toServer = new AnonymousPipeServerStream(PipeDirection.Out);
        var serverIn = new AnonymousPipeClientStream(PipeDirection.In, toServer.ClientSafePipeHandle);
        var fromServer = new AnonymousPipeServerStream(PipeDirection.In);
        var serverOut = new AnonymousPipeClientStream(PipeDirection.Out, fromServer.ClientSafePipeHandle);
        var store = LocalChunkStore.Open(target, appendOnly);
        server = new Thread(() =>
        {
            using (store)
            using (serverIn)
            using (serverOut)
            {
                new ChunkServer(serverIn, serverOut, store).Run();
            }
        }) { IsBackground = true };
        server.Start();
        return new RemoteChunkStore(toServer, fromServer, "pipe:" + target, fromServer);
    }
}
