namespace Backupd.Daemon.Offsite;

/// <summary>
/// The cipher order a copy asks ssh for: the ciphers the user's ssh configuration allows (`ssh -G`, so the system's
/// crypto policy and ~/.ssh/config decide the set), with the AES-GCM ones first when this CPU has AES instructions.
/// OpenSSH's built-in order puts chacha20-poly1305 first, which moves 1.3 GB through ssh here in 3.5 s against
/// AES-GCM's 1.8 s; a copy is bound by it (bench/README.md, "Offsite copies"). Nothing is added to the set and an
/// explicit choice (`-c` or `-o Ciphers=` in BACKUPD_SSH) is kept as it is.
/// </summary>
internal static class SshCipherOrder
{
    /// <summary>True when the ssh command line already chooses its ciphers.</summary>
    public static bool ChosenBy(IEnumerable<string> sshArguments) => sshArguments.Any(a =>
        a == "-c" || (a.StartsWith("-c", StringComparison.Ordinal) && a.Length > 2 && a[2] != '-')
        || a.Contains("ciphers=", StringComparison.OrdinalIgnoreCase) || a.StartsWith("ciphers ", StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// From `ssh -G` output, the allowed ciphers with the AES-GCM ones moved to the front (their relative order and
    /// that of the rest kept), or null when there is nothing to change (no ciphers line, no AES-GCM allowed, or
    /// already first).
    /// </summary>
    public static string? Preferred(string sshGOutput)
    {
        var line = sshGOutput.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("ciphers ", StringComparison.Ordinal));
        if (line is null)
        {
            return null;
        }
        var ciphers = line["ciphers ".Length..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var gcm = ciphers.Where(IsAesGcm).ToList();
        if (gcm.Count == 0 || ciphers.Take(gcm.Count).All(IsAesGcm))
        {
            return null;
        }
        return string.Join(',', gcm.Concat(ciphers.Where(c => !IsAesGcm(c))));
    }

    /// <summary>Whether AES-GCM is the fast choice here: the CPU has AES (and carry-less multiply) instructions.</summary>
    public static bool AesIsFast =>
        (System.Runtime.Intrinsics.X86.Aes.IsSupported && System.Runtime.Intrinsics.X86.Pclmulqdq.IsSupported)
        || System.Runtime.Intrinsics.Arm.Aes.IsSupported;

    private static bool IsAesGcm(string cipher) =>
        cipher.StartsWith("aes", StringComparison.Ordinal) && cipher.EndsWith("-gcm@openssh.com", StringComparison.Ordinal);
}
