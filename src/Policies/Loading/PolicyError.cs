using Backupd.Policies.Model;

namespace Backupd.Policies.Loading;

/// <summary>One problem in a policy file: where (1-based line and column) and what was expected.</summary>
public sealed record PolicyError(string File, int Line, int Column, string Message)
{
    public override string ToString() => $"{File}:{Line}:{Column}: {Message}";
}

/// <summary>The outcome of loading one policy file: its policies when valid, otherwise every error and no policies.</summary>
public sealed record PolicyFileResult(string Path, IReadOnlyList<PolicyDefinition> Policies, IReadOnlyList<PolicyError> Errors)
{
    public bool IsValid => Errors.Count == 0;
}

/// <summary>The outcome of loading several files: per file results plus the policies of the valid files.</summary>
public sealed record PolicySetResult(IReadOnlyList<PolicyFileResult> Files)
{
    public IReadOnlyList<PolicyDefinition> Policies => Files.Where(f => f.IsValid).SelectMany(f => f.Policies).ToList();
    public IReadOnlyList<PolicyError> Errors => Files.SelectMany(f => f.Errors).ToList();
    public bool IsValid => Files.All(f => f.IsValid);
}

/// <summary>Thrown by the *OrThrow helpers: carries every error found.</summary>
public sealed class PolicyLoadException : Exception
{
    public IReadOnlyList<PolicyError> Errors { get; }

    public PolicyLoadException(IReadOnlyList<PolicyError> errors)
        : base(string.Join(Environment.NewLine, errors)) => Errors = errors;

    public PolicyLoadException() : this([]) { }
    public PolicyLoadException(string message) : base(message) => Errors = [];
    public PolicyLoadException(string message, Exception inner) : base(message, inner) => Errors = [];
}
