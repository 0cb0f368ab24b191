using System.Text;
using static Backupd.Storage.Offsite.ServeProtocol;

namespace Backupd.Storage.Offsite;

/// <summary>
/// The server side of `backupd serve`: answers <see cref="ServeProtocol"/> requests from <paramref name="input"/>
/// on <paramref name="output"/> against a <see cref="LocalChunkStore"/>, until the client closes the stream. A failed
/// operation is answered with its status and message and the connection goes on; a malformed frame ends it.
/// The server never holds the key: it checks chunk framing and names, and what it is allowed to do (append-only).
/// </summary>
public sealed class ChunkServer(Stream input, Stream output, LocalChunkStore store)
{
    private IIndexUpload? _upload;

    /// <summary>
    /// Serves until the client disconnects; an upload it did not commit is discarded. Requests are read ahead by a
    /// thread of their own (at most <see cref="ReadAhead"/> waiting), so the next batch crosses the link while this
    /// one is being made durable; they are still handled one at a time, in order.
    /// </summary>
    public void Run()
    {
        var pool = System.Buffers.ArrayPool<byte>.Shared;
        var requests = new System.Collections.Concurrent.BlockingCollection<(byte Code, byte[] Buffer, int Length)>(ReadAhead); // not disposed: the reader may outlive a failed Run
        using var stop = new CancellationTokenSource();
        var stopping = stop.Token;
        Exception? readFailure = null;
        var reader = new Thread(() =>
        {
            try
            {
                while (ReadPooledFrame(input, "the client", pool) is { } frame)
                {
                    requests.Add(frame, stopping);
                }
            }
#pragma warning disable CA1031 // a malformed or cut frame ends the connection: rethrown by Run below
            catch (Exception e)
#pragma warning restore CA1031
            {
                readFailure = e is OperationCanceledException ? null : e;
            }
            finally
            {
                requests.CompleteAdding();
            }
        }) { IsBackground = true, Name = "serve reader" };
        reader.Start();
        try
        {
            foreach (var (code, buffer, length) in requests.GetConsumingEnumerable())
            {
                byte[] response;
                try
                {
                    response = Handle((Op)code, buffer.AsMemory(0, length));
                }
#pragma warning disable CA1031 // every failure of one operation is the client's answer; the connection goes on
                catch (Exception e)
#pragma warning restore CA1031
                {
                    WriteFrame(output, (byte)StatusFor(e), Encoding.UTF8.GetBytes(e.Message));
                    continue;
                }
                finally
                {
                    pool.Return(buffer); // Handle keeps nothing of the request once it returns
                }
                WriteFrame(output, (byte)Status.Ok, response);
            }
            reader.Join();
            if (readFailure is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(readFailure);
            }
        }
        finally
        {
            stop.Cancel(); // a reader blocked on a full queue ends (one blocked reading the client ends with the connection)
            _upload?.Dispose();
            _upload = null;
        }
    }

    /// <summary>Requests read ahead of the one being handled (each at most <see cref="MaxFrame"/>, a copy's batch about 8 MiB).</summary>
    private const int ReadAhead = 2;

    private byte[] Handle(Op op, ReadOnlyMemory<byte> payload)
    {
        var c = new BinaryCursor(payload.Span);
        switch (op)
        {
            case Op.Hello:
                var version = c.U32();
                if (version != ServeProtocol.Version)
                {
                    throw new InvalidOperationException($"the client speaks protocol version {version}, this server {ServeProtocol.Version}: install the same backupd version on both hosts");
                }
                return new BinaryBuilder().U32(ServeProtocol.Version).U8(store.AppendOnly ? (byte)1 : (byte)0).Span.ToArray();
            case Op.ReadConfig:
                return store.ReadConfig() is { } config ? new BinaryBuilder().U8(1).Bytes(config).Span.ToArray() : [0];
            case Op.CreateConfig:
                store.CreateConfig(c.Rest().ToArray());
                return [];
            case Op.Missing:
                return Ids(store.Missing(ReadIds(c.Rest())));
            case Op.PutChunks:
                var chunks = new List<(ChunkId, ReadOnlyMemory<byte>)>();
                while (!c.AtEnd)
                {
                    var id = ChunkId.Read(c.Bytes(ChunkId.Length));
                    var length = c.U32();
                    var at = c.Position;
                    _ = c.Bytes(length);
                    chunks.Add((id, payload.Slice(at, (int)length))); // views into the request: no copy per chunk
                }
                store.PutChunks(chunks);
                return [];
            case Op.GetChunks:
                var frames = new BinaryBuilder();
                foreach (var frame in store.GetChunks(ReadIds(c.Rest())))
                {
                    frames.U32((uint)frame.Length).Bytes(frame);
                }
                return frames.Span.ToArray();
            case Op.IndexBegin:
                _upload?.Dispose();
                _upload = null;
                _upload = store.BeginIndex(Encoding.UTF8.GetString(c.Rest()));
                return [];
            case Op.IndexData:
                (_upload ?? throw new InvalidOperationException("index data without an index begun")).Write(c.Rest());
                return [];
            case Op.IndexCommit:
                var upload = _upload ?? throw new InvalidOperationException("index commit without an index begun");
                _upload = null;
                using (upload)
                {
                    upload.Commit();
                }
                return [];
            case Op.IndexAbort:
                _upload?.Dispose();
                _upload = null;
                return [];
            case Op.List:
                var list = new BinaryBuilder();
                foreach (var (name, length) in store.ListIndexes())
                {
                    WriteName(list, name);
                    list.I64(length);
                }
                return list.Span.ToArray();
            case Op.IndexRead:
                var indexName = ReadName(ref c);
                var offset = c.I64();
                var count = (int)Math.Min(c.U32(), MaxFrame - 16);
                using (var stream = store.OpenIndex(indexName))
                {
                    if (offset >= stream.Length)
                    {
                        return [];
                    }
                    stream.Position = offset;
                    var buffer = new byte[Math.Min(count, stream.Length - offset)];
                    stream.ReadExactly(buffer);
                    return buffer;
                }
            case Op.Delete:
                store.DeleteIndex(Encoding.UTF8.GetString(c.Rest()));
                return [];
            case Op.Collect:
                return new BinaryBuilder().U32((uint)store.BeginCollection()).Span.ToArray();
            case Op.ListChunks:
                return Ids(store.ListChunks(c.U8()));
            case Op.DeleteChunks:
                return new BinaryBuilder().I64(store.DeleteChunks(ReadIds(c.Rest()))).Span.ToArray();
            case Op.Compact:
                return new BinaryBuilder().I64(store.Compact()).Span.ToArray();
            default:
                throw new InvalidOperationException($"unknown operation {(byte)op}");
        }
    }
}
