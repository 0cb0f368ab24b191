using System.Text;
using static Backupd.Storage.Offsite.ServeProtocol;

namespace Backupd.Storage.Offsite;

/// <summary>
/// A copy repository at the other end of a byte stream (the stdin/stdout of `ssh HOST backupd serve ...`): every
/// <see cref="IChunkStore"/> call is one request and one response of <see cref="ServeProtocol"/>. Large calls are
/// split so no frame exceeds <see cref="MaxFrame"/>. <paramref name="connection"/> (the ssh process) is disposed with it.
/// </summary>
public sealed class RemoteChunkStore : IChunkStore
{
    private const int MaxIdsPerRequest = 64 << 10;
    private const int IndexReadBytes = 4 << 20;
    private readonly Stream _toServer;
    private readonly Stream _fromServer;
    private readonly IDisposable? _connection;
    private readonly Func<string?> _serverErrors;

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

    public void PutChunks(IReadOnlyList<(ChunkId Id, byte[] Frame)> chunks)
    {
        var batch = new BinaryBuilder();
        var bytes = 0L;
        Span<byte> idBytes = stackalloc byte[ChunkId.Length];
        foreach (var (id, frame) in chunks)
        {
            if (bytes + frame.Length + 36 > MaxFrame - 16)
            {
                Call(Op.PutChunks, batch.Span);
                batch = new BinaryBuilder();
                bytes = 0;
            }
            id.Write(idBytes);
            batch.Bytes(idBytes).U32((uint)frame.Length).Bytes(frame);
            bytes += frame.Length + 36;
        }
        if (bytes > 0)
        {
            Call(Op.PutChunks, batch.Span);
        }
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
        var length = ListIndexes().FirstOrDefault(i => i.Name == name).Length;
        return ListIndexes().Any(i => i.Name == name)
            ? new IndexStream(this, name, length)
            : throw new Repository.RestorePointNotFoundException($"{Location} holds no copy of point {name}");
    }

    public void DeleteIndex(string name) => Call(Op.Delete, Encoding.UTF8.GetBytes(name));

    public void Dispose()
    {
        _toServer.Dispose(); // EOF: the server ends
        _connection?.Dispose();
    }

    private byte[] Call(Op op, ReadOnlySpan<byte> payload)
    {
        (byte Code, byte[] Payload)? frame;
        try
        {
            WriteFrame(_toServer, (byte)op, payload);
            frame = ReadFrame(_fromServer, Location);
        }
        catch (IOException e)
        {
            throw Lost(e.Message, e);
        }
        if (frame is not var (code, body))
        {
            throw Lost("the server closed the connection", null);
        }
        return (Status)code == Status.Ok ? body : throw ExceptionFor((Status)code, $"{Location}: {Encoding.UTF8.GetString(body)}");
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
