using System.Text;
using static Backupd.Storage.Offsite.ServeProtocol;

namespace Backupd.Storage.Offsite;

/// <summary>
/// A copy repository at the other end of a byte stream (the stdin/stdout of `ssh HOST backupd serve ...`): every
/// <see cref="IChunkStore"/> call is one request and one response of <see cref="ServeProtocol"/>. Large calls are
/// split so no frame exceeds <see cref="MaxFrame"/>. <paramref name="connection"/> (the ssh process) is disposed with it.
/// Calls from several threads are pipelined: each request goes on the wire as soon as the one before it is written,
/// and responses, which come in request order, are handed to their callers in that order; so a copy's missing-chunks
/// query travels while the previous batch is still being stored (the link never waits for a round trip).
/// </summary>
public sealed class RemoteChunkStore : IChunkStore, IChunkCollector
{
    private const int MaxIdsPerRequest = 64 << 10;
    private const int IndexReadBytes = 4 << 20;
    private readonly Stream _toServer;
    private readonly Stream _fromServer;
    private readonly IDisposable? _connection;
    private readonly Func<string?> _serverErrors;
    private readonly Lock _writing = new();
    private readonly Lock _reading = new();
    private readonly System.Collections.Concurrent.ConcurrentQueue<Pending> _pending = new(); // requests on the wire, oldest first (enqueued under _writing)
    private Exception? _broken;

    /// <param name="serverErrors">What the transport has to add when the connection fails (ssh's stderr).</param>
    public RemoteChunkStore(Stream toServer, Stream fromServer, string location, IDisposable? connection, Func<string?>? serverErrors = null)
    {
        _toServer = toServer;
        _fromServer = fromServer;
        Location = location;
        _connection = connection;
        _serverErrors = serverErrors ?? (() => null);
        var hello = new BinaryCursor(Call(Op.Hello, new BinaryBuilder().U32(ServeProtocol.Version).Span));
        var version = hello.U32();
        AppendOnly = hello.U8() == 1;
        if (version != ServeProtocol.Version)
        {
            throw new Repository.RepositoryException($"{location}: the server speaks protocol version {version}, this client {ServeProtocol.Version}: install the same backupd version on both hosts");
        }
    }

    public string Location { get; }
    public bool AppendOnly { get; }

    public byte[]? ReadConfig()
    {
        var r = Call(Op.ReadConfig, []);
        return r[0] == 1 ? r[1..] : null;
    }

    public void CreateConfig(byte[] config) => Call(Op.CreateConfig, config);

    public IReadOnlyList<ChunkId> Missing(IReadOnlyList<ChunkId> ids)
    {
        var missing = new List<ChunkId>();
        for (var i = 0; i < ids.Count; i += MaxIdsPerRequest)
        {
            var part = ids.Skip(i).Take(MaxIdsPerRequest).ToList();
            missing.AddRange(ReadIds(Call(Op.Missing, Ids(part))));
        }
        return missing;
    }

    public void PutChunks(IReadOnlyList<(ChunkId Id, ReadOnlyMemory<byte> Frame)> chunks) => BeginPutChunks(chunks)();

    /// <summary>
    /// Sends the frames as they are (no copy into one payload), at most <see cref="MaxFrame"/> per request; the
    /// answers are awaited by the returned action, so the caller can send the next batch meanwhile.
    /// </summary>
    public Action BeginPutChunks(IReadOnlyList<(ChunkId Id, ReadOnlyMemory<byte> Frame)> chunks)
    {
        var sent = new List<Pending>();
        var first = 0;
        while (first < chunks.Count)
        {
            var end = first;
            var bytes = 0L;
            while (end < chunks.Count && (end == first || bytes + chunks[end].Frame.Length + 36 <= MaxFrame - 16))
            {
                bytes += chunks[end].Frame.Length + 36;
                end++;
            }
            var (from, to) = (first, end);
            sent.Add(Send(Op.PutChunks, (int)bytes, output =>
            {
                Span<byte> head = stackalloc byte[ChunkId.Length + 4];
                for (var i = from; i < to; i++)
                {
                    chunks[i].Id.Write(head);
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(head[ChunkId.Length..], (uint)chunks[i].Frame.Length);
                    output.Write(head);
                    output.Write(chunks[i].Frame.Span);
                }
            }));
            first = end;
        }
        return () =>
        {
            foreach (var request in sent)
            {
                Receive(request);
            }
        };
    }

    public IReadOnlyList<byte[]> GetChunks(IReadOnlyList<ChunkId> ids)
    {
        var c = Call(Op.GetChunks, Ids(ids));
        var cursor = new BinaryCursor(c);
        var frames = new List<byte[]>(ids.Count);
        while (!cursor.AtEnd)
        {
            frames.Add(cursor.Bytes(cursor.U32()).ToArray());
        }
        return frames.Count == ids.Count ? frames : throw new InvalidDataException($"{Location}: {frames.Count} chunks answered for {ids.Count} asked");
    }

    public IIndexUpload BeginIndex(string name)
    {
        Call(Op.IndexBegin, Encoding.UTF8.GetBytes(name));
        return new Upload(this);
    }

    public IReadOnlyList<(string Name, long Length)> ListIndexes()
    {
        var c = Call(Op.List, []);
        var cursor = new BinaryCursor(c);
        var list = new List<(string, long)>();
        while (!cursor.AtEnd)
        {
            list.Add((ReadName(ref cursor), cursor.I64()));
        }
        return list;
    }

    public Stream OpenIndex(string name)
    {
        var found = ListIndexes().Where(i => i.Name == name).ToList(); // one round trip: an index is opened per file of a copy
        return found.Count > 0
            ? new IndexStream(this, name, found[0].Length)
            : throw new Repository.RestorePointNotFoundException($"{Location} holds no copy of point {name}");
    }

    public void DeleteIndex(string name) => Call(Op.Delete, Encoding.UTF8.GetBytes(name));

    public int BeginCollection() => (int)new BinaryCursor(Call(Op.Collect, [])).U32();

    public IReadOnlyList<ChunkId> ListChunks(byte prefix) => ReadIds(Call(Op.ListChunks, [prefix]));

    public long DeleteChunks(IReadOnlyList<ChunkId> ids)
    {
        long freed = 0;
        for (var i = 0; i < ids.Count; i += MaxIdsPerRequest)
        {
            freed += new BinaryCursor(Call(Op.DeleteChunks, Ids(ids.Skip(i).Take(MaxIdsPerRequest).ToList()))).I64();
        }
        return freed;
    }

    public long Compact() => new BinaryCursor(Call(Op.Compact, [])).I64();

    public void Dispose()
    {
        _toServer.Dispose(); // EOF: the server ends
        _connection?.Dispose();
    }

    private byte[] Call(Op op, ReadOnlySpan<byte> payload)
    {
        var copy = payload.ToArray();
        return Call(op, copy.Length, output => output.Write(copy));
    }

    private byte[] Call(Op op, int payloadLength, Action<Stream> writePayload) => Receive(Send(op, payloadLength, writePayload));

    /// <summary>
    /// Writes one request (under the write lock, so frames never interleave) and queues it for its response. A
    /// broken connection fails this and every later call.
    /// </summary>
    private Pending Send(Op op, int payloadLength, Action<Stream> writePayload)
    {
        var mine = new Pending();
        lock (_writing)
        {
            ThrowIfBroken();
            _pending.Enqueue(mine); // before writing: a reader may then wait for this response, never miss it
            try
            {
                WriteFrameHeader(_toServer, (byte)op, payloadLength);
                writePayload(_toServer);
                _toServer.Flush();
            }
            catch (IOException e)
            {
                var lost = Lost(e.Message, e);
                Break(lost);
                throw lost;
            }
        }
        return mine;
    }

    /// <summary>
    /// Waits for the response to <paramref name="mine"/>, reading (under the read lock) those of earlier requests
    /// still unread and handing each to its caller: responses come in request order.
    /// </summary>
    private byte[] Receive(Pending mine)
    {
        lock (_reading)
        {
            while (!mine.Done)
            {
                ThrowIfBroken();
                if (!_pending.TryDequeue(out var head))
                {
                    throw new InvalidOperationException("a response is awaited with no request on the wire"); // a bug, not the peer
                }
                try
                {
                    head.Frame = ReadFrame(_fromServer, Location);
                }
                catch (IOException e)
                {
                    var lost = Lost(e.Message, e);
                    Break(lost);
                    throw lost;
                }
                catch (InvalidDataException e)
                {
                    Break(e);
                    throw;
                }
                if (head.Frame is null)
                {
                    var lost = Lost("the server closed the connection", null);
                    Break(lost);
                    throw lost;
                }
                head.Done = true;
            }
        }
        var (code, body) = mine.Frame!.Value;
        return (Status)code == Status.Ok ? body : throw ExceptionFor((Status)code, $"{Location}: {Encoding.UTF8.GetString(body)}");
    }

    private void Break(Exception e) => Interlocked.CompareExchange(ref _broken, e, null);

    private void ThrowIfBroken()
    {
        if (_broken is { } e)
        {
            throw new Repository.RepositoryException(e.Message, e); // another caller's failure: the connection is gone
        }
    }

    private sealed class Pending
    {
        public volatile bool Done;
        public (byte Code, byte[] Payload)? Frame;
    }

    private Repository.RepositoryException Lost(string what, Exception? inner)
    {
        var detail = _serverErrors() is { Length: > 0 } s ? $" ({s.Trim()})" : "";
        var message = $"{Location}: {what}{detail}; nothing incomplete is listed there, and the next copy sends only what is missing";
        return inner is null ? new Repository.RepositoryException(message) : new Repository.RepositoryException(message, inner);
    }

    private sealed class Upload(RemoteChunkStore store) : IIndexUpload
    {
        private const int Piece = 4 << 20;
        private bool _ended;

        public void Write(ReadOnlySpan<byte> data)
        {
            for (var i = 0; i < data.Length; i += Piece)
            {
                store.Call(Op.IndexData, data.Slice(i, Math.Min(Piece, data.Length - i)));
            }
        }

        public void Commit()
        {
            store.Call(Op.IndexCommit, []);
            _ended = true;
        }

        public void Dispose()
        {
            if (!_ended)
            {
                _ended = true;
                try
                {
                    store.Call(Op.IndexAbort, []);
                }
                catch (Repository.RepositoryException)
                {
                    // the connection is gone: the server discards the upload itself
                }
            }
        }
    }

    /// <summary>An index read in pieces of 4 MiB.</summary>
    private sealed class IndexStream(RemoteChunkStore store, string name, long length) : Stream
    {
        private long _position;

        public override int Read(Span<byte> buffer)
        {
            if (_position >= length || buffer.IsEmpty)
            {
                return 0;
            }
            var request = new BinaryBuilder();
            WriteName(request, name);
            request.I64(_position).U32((uint)Math.Min(buffer.Length, IndexReadBytes));
            var data = store.Call(Op.IndexRead, request.Span);
            data.CopyTo(buffer);
            _position += data.Length;
            return data.Length;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => _position = value; }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => _position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => length + offset,
        };
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
