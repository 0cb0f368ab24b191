namespace Backupd.Storage.Repository;

/// <summary>A repository operation was refused or failed; nothing was changed unless the message says so.</summary>
public class RepositoryException : Exception
{
    public RepositoryException() { }
    public RepositoryException(string message) : base(message) { }
    public RepositoryException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Another writer (or, for readers, a writer) holds the group's lock.</summary>
public sealed class RepositoryBusyException : RepositoryException
{
    public RepositoryBusyException() { }
    public RepositoryBusyException(string message) : base(message) { }
    public RepositoryBusyException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>The named restore point or file does not exist.</summary>
public sealed class RestorePointNotFoundException : RepositoryException
{
    public RestorePointNotFoundException() { }
    public RestorePointNotFoundException(string message) : base(message) { }
    public RestorePointNotFoundException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Stored data does not match its recorded digest or checksums.</summary>
public sealed class RepositoryCorruptException : RepositoryException
{
    public RepositoryCorruptException() { }
    public RepositoryCorruptException(string message) : base(message) { }
    public RepositoryCorruptException(string message, Exception inner) : base(message, inner) { }
}
