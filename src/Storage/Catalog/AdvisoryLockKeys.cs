using System.Security.Cryptography;
using System.Text;

namespace Backupd.Storage.Catalog;

/// <summary>
/// The 64-bit keys backupd uses with PostgreSQL's session advisory locks. Fixed values, so every
/// process and host that shares a catalog agrees on them.
/// </summary>
public static class AdvisoryLockKeys
{
    /// <summary>Held while migrations are checked and applied ("bkdmigr1" in ASCII).</summary>
    public const long Migrations = 0x626B646D69677231;

    /// <summary>The per-domain run lock: first 8 bytes of SHA-256("backupd-domain:" + uuid).</summary>
    public static long Domain(Guid domainUuid)
    {
        var digest = SHA256.HashData(Encoding.ASCII.GetBytes("backupd-domain:" + domainUuid.ToString("D")));
        return BitConverter.ToInt64(digest, 0);
    }

    /// <summary>How pg_locks shows a bigint advisory key: classid = high 32 bits, objid = low 32 bits, objsubid = 1.</summary>
    public static (long ClassId, long ObjId) PgLocksParts(long key)
    {
        var unsigned = unchecked((ulong)key);
        return ((long)(unsigned >> 32), (long)(unsigned & 0xFFFF_FFFF));
    }
}
