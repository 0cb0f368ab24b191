using System.Globalization;

namespace Backupd.Policies.Schedules;

/// <summary>
/// Short schedule forms admins write without thinking in cron, each translated to one Quartz cron
/// expression: <c>hourly</c>, <c>hourly :MM</c>, <c>daily</c>, <c>daily HH:MM</c>, <c>weekly</c>,
/// <c>weekly DAY[,DAY…] HH:MM</c>, <c>monthly</c>, <c>monthly D|last HH:MM</c>, <c>every Ns|Nm|Nh</c>.
/// </summary>
public static class HumanSchedule
{
    public const string Forms = "'hourly', 'hourly :MM', 'daily', 'daily HH:MM', 'weekly', 'weekly DAY HH:MM', 'monthly', 'monthly D HH:MM', 'every 30s|15m|6h'";

    private static readonly string[] Keywords = ["hourly", "daily", "weekly", "monthly", "every"];
    private static readonly string[] Days = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

    /// <summary>True when <paramref name="text"/> starts with one of the human keywords (so it is not cron).</summary>
    public static bool IsHumanForm(string text)
    {
        var first = text.TrimStart().Split(' ', 2)[0];
        return Keywords.Contains(first, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>Translates a human form to cron, or returns an error message naming the expected form.</summary>
    public static bool TryTranslate(string text, out string cron, out string? error)
    {
        cron = "";
        error = null;
        var words = text.Trim().ToLowerInvariant().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        switch (words[0])
        {
            case "hourly" when words.Length == 1:
                cron = "0 0 * * * ?";
                return true;
            case "hourly" when words.Length == 2 && words[1].StartsWith(':') && TryNumber(words[1][1..], 0, 59, out var minute):
                cron = $"0 {minute} * * * ?";
                return true;
            case "hourly":
                error = "expected 'hourly' or 'hourly :MM' (minute 00-59)";
                return false;
            case "daily" when words.Length == 1:
                cron = "0 0 0 * * ?";
                return true;
            case "daily" when words.Length == 2 && TryTime(words[1], out var h, out var m):
                cron = $"0 {m} {h} * * ?";
                return true;
            case "daily":
                error = "expected 'daily' or 'daily HH:MM' (24-hour clock)";
                return false;
            case "weekly" when words.Length == 1:
                cron = "0 0 0 ? * MON";
                return true;
            case "weekly" when words.Length == 3 && TryDays(words[1], out var days) && TryTime(words[2], out var wh, out var wm):
                cron = $"0 {wm} {wh} ? * {days}";
                return true;
            case "weekly":
                error = "expected 'weekly' or 'weekly DAY[,DAY...] HH:MM' (DAY is mon..sun)";
                return false;
            case "monthly" when words.Length == 1:
                cron = "0 0 0 1 * ?";
                return true;
            case "monthly" when words.Length == 3 && (words[1] == "last" || TryNumber(words[1], 1, 31, out _)) && TryTime(words[2], out var mh, out var mm):
                cron = $"0 {mm} {mh} {(words[1] == "last" ? "L" : words[1].TrimStart('0'))} * ?";
                return true;
            case "monthly":
                error = "expected 'monthly' or 'monthly D HH:MM' (D is 1-31 or 'last')";
                return false;
            case "every":
                return TryEvery(words, out cron, out error);
            default:
                error = $"expected one of {Forms}";
                return false;
        }
    }

    private static bool TryEvery(string[] words, out string cron, out string? error)
    {
        cron = "";
        error = "expected 'every Ns', 'every Nm' or 'every Nh' where N divides 60 (s, m) or 24 (h), e.g. 'every 15m'";
        if (words.Length != 2 || words[1].Length < 2) return false;
        var unit = words[1][^1];
        if (!TryNumber(words[1][..^1], 1, 60, out var n)) return false;
        switch (unit)
        {
            case 's' when 60 % n == 0: cron = $"*/{n} * * * * ?"; break;
            case 'm' when 60 % n == 0: cron = n == 60 ? "0 0 * * * ?" : $"0 */{n} * * * ?"; break;
            case 'h' when 24 % n == 0: cron = n == 24 ? "0 0 0 * * ?" : $"0 0 */{n} * * ?"; break;
            default: return false;
        }
        error = null;
        return true;
    }

    private static bool TryDays(string text, out string days)
    {
        var parts = text.ToUpperInvariant().Split(',');
        days = string.Join(',', parts);
        return parts.All(p => Days.Contains(p));
    }

    private static bool TryTime(string text, out int hour, out int minute)
    {
        hour = minute = 0;
        var parts = text.Split(':');
        return parts.Length == 2 && parts[0].Length is 1 or 2 && parts[1].Length == 2
            && TryNumber(parts[0], 0, 23, out hour) && TryNumber(parts[1], 0, 59, out minute);
    }

    private static bool TryNumber(string text, int min, int max, out int value) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value >= min && value <= max;
}
