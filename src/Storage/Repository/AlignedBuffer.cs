using System.Runtime.InteropServices;

namespace Backupd.Storage.Repository;

/// <summary>Native memory aligned for O_DIRECT (<see cref="RepositoryDirectory.DirectAlignment"/>), grown on demand and reused.</summary>
internal sealed unsafe class AlignedBuffer : IDisposable
{
    private void* _memory;
    private int _capacity;

    /// <summary>The first <paramref name="length"/> bytes, the buffer grown (contents not kept) when it is smaller.</summary>
    public Span<byte> Take(int length)
    {
        ObjectDisposedException.ThrowIf(_capacity < 0, this);
        if (length > _capacity)
        {
            NativeMemory.AlignedFree(_memory);
            _memory = null;
            _capacity = 0;
            var capacity = (length + (1 << 20) - 1) & ~((1 << 20) - 1);
            _memory = NativeMemory.AlignedAlloc((nuint)capacity, RepositoryDirectory.DirectAlignment);
            _capacity = capacity;
        }
        return new Span<byte>(_memory, length);
    }

    public void Dispose()
    {
        NativeMemory.AlignedFree(_memory);
        _memory = null;
        _capacity = -1;
    }
}
