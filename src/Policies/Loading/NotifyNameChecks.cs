namespace Backupd.Policies.Loading;

/// <summary>
/// A policy's `notify:` names targets of the daemon configuration (where their URLs and secrets live), which the
/// policy loader alone does not see. A name that is not a target is an error of the policy's file like any other
/// (file, line, column, "did you mean"): the file contributes no policies, so a typo never silently drops alerts.
/// </summary>
public static class NotifyNameChecks
{
    /// <summary><paramref name="file"/> unchanged when every name is a target (or it already has errors), else with the errors and no policies.</summary>
    public static PolicyFileResult Check(PolicyFileResult file, IReadOnlyCollection<string> targets)
    {
        if (!file.IsValid) return file;
        var errors = new List<PolicyError>();
        foreach (var policy in file.Policies)
        {
            for (var i = 0; i < policy.Notify.Count; i++)
            {
                var name = policy.Notify[i];
                if (targets.Contains(name, StringComparer.Ordinal)) continue;
                var at = i < policy.NotifyPositions.Count ? policy.NotifyPositions[i] : policy.Source;
                var hint = KeySuggestions.Suggest(name, targets) is { } close ? $" (did you mean '{close}'?)" : "";
                var known = targets.Count == 0 ? "the configuration defines no notify targets" : $"targets: {string.Join(", ", targets.Order(StringComparer.Ordinal))}";
                errors.Add(new PolicyError(at.File, at.Line, at.Column,
                    $"'notify' of policy '{policy.Name}' names '{name}', which is not a notify target of the daemon configuration{hint}; {known}"));
            }
        }
        return errors.Count == 0 ? file : file with { Policies = [], Errors = errors };
    }
}
