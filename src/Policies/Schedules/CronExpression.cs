using System.Globalization;

namespace Backupd.Policies.Schedules;

/// <summary>
/// A Quartz-syntax cron expression: <c>seconds minutes hours day-of-month month day-of-week [year]</c>.
/// Parsed here, not by Quartz, so that the pure policy loader can point at the exact character that
/// is wrong and <c>policy check</c> can print next fire times without a scheduler. The daemon's
/// scheduler hands the same text to Quartz; a differential test keeps the two in agreement.
/// </summary>
/// <remarks>
/// Supported: <c>*</c>, <c>?</c>, lists, ranges (wrapping, e.g. <c>22-2</c>), steps (<c>*/5</c>, <c>10/15</c>,
/// <c>1-30/2</c>), month and weekday names, and in day-of-month <c>L</c>, <c>L-n</c>, <c>nW</c>, <c>LW</c>,
/// in day-of-week <c>L</c>, <c>nL</c>, <c>n#k</c>. As in Quartz, exactly one of day-of-month and
/// day-of-week is <c>?</c>, and weekdays count 1 = Sunday … 7 = Saturday.
/// </remarks>
public sealed class CronExpression
{
    private const int MinYear = 1970;
    private const int MaxYear = 2099;

    private static readonly string[] FieldNames = ["seconds", "minutes", "hours", "day-of-month", "month", "day-of-week", "year"];
    private static readonly string[] MonthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
    private static readonly string[] DayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

    private readonly bool[] _seconds = new bool[60];
    private readonly bool[] _minutes = new bool[60];
    private readonly bool[] _hours = new bool[24];
    private readonly bool[] _daysOfMonth = new bool[32];
    private readonly bool[] _months = new bool[13];
    private readonly bool[] _daysOfWeek = new bool[8];
    private readonly bool[]? _years;
    private DayOfMonthSpecial _domSpecial;
    private int _domArgument;
    private DayOfWeekSpecial _dowSpecial;
    private int _dowArgument;
    private int _dowNth;
    private bool _dayOfMonthIsQuestion;
    /// <summary>A wildcard, step or range in seconds, minutes or hours: "every interval" rather than "at this time of day".</summary>
    private bool _intervalSemantics;

    private enum DayOfMonthSpecial { None, Last, LastOffset, NearestWeekday, LastWeekday }
    private enum DayOfWeekSpecial { None, LastOfMonth, Nth }

    /// <summary>The expression as written (trimmed).</summary>
    public string Text { get; }

    private CronExpression(string text, bool hasYear)
    {
        Text = text;
        if (hasYear) _years = new bool[MaxYear - MinYear + 1];
    }

    public override string ToString() => Text;

    /// <summary>Parses <paramref name="text"/> or reports the first problem with its 0-based offset in the text.</summary>
    public static bool TryParse(string text, out CronExpression? expression, out CronError? error)
    {
        expression = null;
        error = null;
        var fields = SplitFields(text);
        if (fields.Count is < 6 or > 7)
        {
            error = new CronError(0, $"expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week [year]), found {fields.Count}");
            return false;
        }
        var result = new CronExpression(string.Join(' ', fields.Select(f => f.Text)), fields.Count == 7);
        for (var i = 0; i < fields.Count; i++)
        {
            var problem = result.ParseField(i, fields[i].Text.ToUpperInvariant());
            if (problem is not null)
            {
                error = new CronError(fields[i].Offset + problem.Value.Offset, $"{FieldNames[i]} field '{fields[i].Text}': {problem.Value.Message}");
                return false;
            }
        }
        var domQ = fields[3].Text == "?";
        var dowQ = fields[5].Text == "?";
        if (domQ == dowQ)
        {
            error = new CronError(fields[domQ ? 3 : 5].Offset,
                domQ ? "day-of-month and day-of-week are both '?'; give one of them"
                     : "give '?' in either day-of-month or day-of-week (Quartz does not combine both), e.g. '0 0 2 * * ?' or '0 0 2 ? * MON'");
            return false;
        }
        result._dayOfMonthIsQuestion = domQ;
        result._intervalSemantics = fields.Take(3).Any(f => f.Text.IndexOfAny(['*', '/', '-']) >= 0);
        expression = result;
        return true;
    }

    public static CronExpression Parse(string text) =>
        TryParse(text, out var e, out var error) ? e! : throw new FormatException($"{error!.Message} (at character {error.Offset + 1})");

    private static List<(string Text, int Offset)> SplitFields(string text)
    {
        var fields = new List<(string, int)>();
        var i = 0;
        while (i < text.Length)
        {
            if (char.IsWhiteSpace(text[i])) { i++; continue; }
            var start = i;
            while (i < text.Length && !char.IsWhiteSpace(text[i])) i++;
            fields.Add((text[start..i], start));
        }
        return fields;
    }

    private (int Offset, string Message)? ParseField(int field, string text)
    {
        switch (field)
        {
            case 3:
                if (text == "?") return null;
                if (text == "L") { _domSpecial = DayOfMonthSpecial.Last; return null; }
                if (text == "LW") { _domSpecial = DayOfMonthSpecial.LastWeekday; return null; }
                if (text.StartsWith("L-", StringComparison.Ordinal))
                {
                    if (!TryNumber(text[2..], 0, 30, out _domArgument)) return (2, "expected 'L-n' with n from 0 to 30");
                    _domSpecial = DayOfMonthSpecial.LastOffset;
                    return null;
                }
                if (text.EndsWith('W'))
                {
                    if (!TryNumber(text[..^1], 1, 31, out _domArgument)) return (0, "expected 'nW' with n from 1 to 31 (the weekday nearest to day n)");
                    _domSpecial = DayOfMonthSpecial.NearestWeekday;
                    return null;
                }
                return ParseList(text, _daysOfMonth, 1, 31, null, field);
            case 5:
                if (text == "?") return null;
                if (text == "L") { _daysOfWeek[7] = true; return null; }
                if (text.Length > 1 && text.EndsWith('L'))
                {
                    if (!TryDay(text[..^1], out _dowArgument)) return (0, "expected 'nL' with n a weekday 1-7 or SUN-SAT (the last such weekday of the month)");
                    _dowSpecial = DayOfWeekSpecial.LastOfMonth;
                    return null;
                }
                var hash = text.IndexOf('#', StringComparison.Ordinal);
                if (hash >= 0)
                {
                    if (!TryDay(text[..hash], out _dowArgument)) return (0, "expected 'n#k' with n a weekday 1-7 or SUN-SAT");
                    if (!TryNumber(text[(hash + 1)..], 1, 5, out _dowNth)) return (hash + 1, "expected 'n#k' with k from 1 to 5 (the k-th such weekday of the month)");
                    _dowSpecial = DayOfWeekSpecial.Nth;
                    return null;
                }
                return ParseList(text, _daysOfWeek, 1, 7, DayNames, field);
            case 0: return ParseList(text, _seconds, 0, 59, null, field);
            case 1: return ParseList(text, _minutes, 0, 59, null, field);
            case 2: return ParseList(text, _hours, 0, 23, null, field);
            case 4: return ParseList(text, _months, 1, 12, MonthNames, field);
            default: return ParseList(text, _years!, MinYear, MaxYear, null, field);
        }
    }

    private static bool TryDay(string text, out int day)
    {
        if (TryNumber(text, 1, 7, out day)) return true;
        var index = Array.IndexOf(DayNames, text);
        day = index + 1;
        return index >= 0;
    }

    private static bool TryNumber(string text, int min, int max, out int value) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value >= min && value <= max;

    private static (int Offset, string Message)? ParseList(string text, bool[] set, int min, int max, string[]? names, int field)
    {
        var offset = 0;
        foreach (var item in text.Split(','))
        {
            var problem = ParseItem(item, set, min, max, names, field);
            if (problem is not null) return (offset + problem.Value.Offset, problem.Value.Message);
            offset += item.Length + 1;
        }
        return null;
    }

    private static (int Offset, string Message)? ParseItem(string item, bool[] set, int min, int max, string[]? names, int field)
    {
        var expected = names is null
            ? $"expected a number {min}-{max}, '*', a range 'a-b', a list 'a,b' or a step 'a/n'"
            : $"expected {min}-{max} or {names[0]}-{names[^1]}, '*', a range, a list or a step";
        if (item.Length == 0) return (0, $"empty list item; {expected}");
        var slash = item.IndexOf('/', StringComparison.Ordinal);
        var rangePart = slash >= 0 ? item[..slash] : item;
        var step = 1;
        var span = max - min + 1;
        if (slash >= 0)
        {
            var stepText = item[(slash + 1)..];
            if (!int.TryParse(stepText, NumberStyles.None, CultureInfo.InvariantCulture, out step) || step < 1 || step > span)
                return (slash + 1, $"step '{stepText}' must be a whole number from 1 to {span}");
        }
        int start, end;
        if (rangePart == "*")
        {
            (start, end) = (min, max);
        }
        else
        {
            var dash = rangePart.IndexOf('-', StringComparison.Ordinal);
            var startText = dash > 0 ? rangePart[..dash] : rangePart;
            if (!TryValue(startText, min, max, names, out start)) return (0, $"'{startText}' is not valid here; {expected}");
            if (dash > 0)
            {
                var endText = rangePart[(dash + 1)..];
                if (!TryValue(endText, min, max, names, out end)) return (dash + 1, $"'{endText}' is not valid here; {expected}");
                if (end < start && field == 6) return (dash + 1, $"year range {start}-{end} runs backwards");
            }
            else
            {
                end = slash >= 0 ? max : start;
            }
        }
        if (end < start) end += span; // wrapping range such as 22-2 or FRI-MON, as Quartz reads it
        for (var v = start; v <= end; v += step)
        {
            var value = v > max ? v - span : v;
            set[value - (set.Length > span ? 0 : min)] = true;
        }
        return null;
    }

    private static bool TryValue(string text, int min, int max, string[]? names, out int value)
    {
        if (TryNumber(text, min, max, out value)) return true;
        if (names is null) return false;
        var index = Array.IndexOf(names, text);
        value = index + min;
        return index >= 0;
    }

    /// <summary>
    /// The first fire time strictly after <paramref name="after"/>, evaluating the fields in
    /// <paramref name="zone"/>'s wall-clock time; null if the expression never fires again (before 2100).
    /// Daylight saving follows Quartz: readings swallowed by a forward jump fire once, at the instant
    /// the clocks jumped to; readings repeated by a backward jump fire at each occurrence when the
    /// expression is an interval (a wildcard, step or range in seconds, minutes or hours), otherwise once.
    /// </summary>
    public DateTimeOffset? NextAfter(DateTimeOffset after, TimeZoneInfo zone)
    {
        // Whole seconds only: the earliest candidate is the first whole second after 'after'.
        var startTicks = after.UtcTicks - (after.UtcTicks % TimeSpan.TicksPerSecond) + TimeSpan.TicksPerSecond;
        var startUtc = new DateTime(startTicks, DateTimeKind.Utc);
        var startLocal = TimeZoneInfo.ConvertTimeFromUtc(startUtc, zone);
        if (!_intervalSemantics)
        {
            // A time of day walks the wall clock forward from the start's reading: the first matching
            // reading, at its first occurrence that is not before the start. A reading replayed by a
            // backward jump therefore fires once.
            foreach (var local in ReadingsFrom(startLocal))
                foreach (var instant in InstantsOf(local, zone))
                    if (instant.UtcTicks >= startTicks) return instant.ToOffset(zone.GetUtcOffset(instant));
            return null;
        }
        // An interval fires at every matching instant, replayed readings included, so readings a little
        // before the start's reading are scanned too (after a backward jump they can be later instants).
        DateTimeOffset? best = null;
        DateTime bestLocal = default;
        // Only near a clock change can an earlier reading be a later instant: elsewhere scan from the start's reading.
        var shift = TimeSpan.FromHours(MaxClockShiftHours);
        var nearChange = zone.GetUtcOffset(startUtc - shift) != zone.GetUtcOffset(startUtc) || zone.GetUtcOffset(startUtc + shift) != zone.GetUtcOffset(startUtc);
        foreach (var local in ReadingsFrom(nearChange ? startLocal - shift : startLocal))
        {
            // Away from a clock change readings and instants grow together: the first match is the answer.
            if (best is not null && (!nearChange || local > bestLocal + shift)) break;
            foreach (var instant in InstantsOf(local, zone))
            {
                if (instant.UtcTicks < startTicks || (best is not null && instant.UtcTicks >= best.Value.UtcTicks)) continue;
                best = instant;
                bestLocal = local;
            }
        }
        return best?.ToOffset(zone.GetUtcOffset(best.Value));
    }

    /// <summary>Matching wall-clock readings from <paramref name="from"/> on, in order, up to the last year.</summary>
    private IEnumerable<DateTime> ReadingsFrom(DateTime from)
    {
        for (var day = from.Date; day.Year <= MaxYear; day = day.AddDays(1))
        {
            if (!DayMatches(day)) continue;
            foreach (var time in TimesOfDayFrom(day == from.Date ? from.TimeOfDay : TimeSpan.Zero)) yield return day + time;
        }
    }

    /// <summary>Every zone clock change in history is at most this large.</summary>
    private const int MaxClockShiftHours = 3;

    /// <summary>The instants, earliest first, at which the zone's clock reads <paramref name="local"/> (or, inside a gap, the instant it jumped past it).</summary>
    private static IEnumerable<DateTimeOffset> InstantsOf(DateTime local, TimeZoneInfo zone)
    {
        if (zone.IsAmbiguousTime(local))
        {
            // Earlier instant (larger offset) first.
            foreach (var offset in zone.GetAmbiguousTimeOffsets(local).OrderDescending()) yield return new DateTimeOffset(local, offset);
        }
        else if (zone.IsInvalidTime(local))
        {
            yield return GapEnd(local, zone);
        }
        else
        {
            yield return new DateTimeOffset(local, zone.GetUtcOffset(local));
        }
    }

    /// <summary>The instant a forward clock change that swallowed <paramref name="local"/> took effect.</summary>
    private static DateTimeOffset GapEnd(DateTime local, TimeZoneInfo zone)
    {
        var before = zone.GetUtcOffset(local.AddHours(-MaxClockShiftHours));
        var after = zone.GetUtcOffset(local.AddHours(MaxClockShiftHours));
        // The change happened between local-after and local-before (UTC); find its first second.
        var low = DateTime.SpecifyKind(local - after, DateTimeKind.Utc);
        var high = DateTime.SpecifyKind(local - before, DateTimeKind.Utc);
        while (high - low > TimeSpan.FromSeconds(1))
        {
            var mid = low + (high - low) / 2;
            mid = mid.AddTicks(-(mid.Ticks % TimeSpan.TicksPerSecond));
            if (mid <= low) break;
            if (zone.GetUtcOffset(mid) == after) high = mid; else low = mid;
        }
        return new DateTimeOffset(zone.GetUtcOffset(low) == after ? low : high);
    }

    /// <summary>The next <paramref name="count"/> fire times after <paramref name="after"/>.</summary>
    public IReadOnlyList<DateTimeOffset> NextFireTimes(DateTimeOffset after, TimeZoneInfo zone, int count)
    {
        var result = new List<DateTimeOffset>(count);
        var cursor = after;
        while (result.Count < count && NextAfter(cursor, zone) is { } next)
        {
            result.Add(next);
            cursor = next;
        }
        return result;
    }

    private IEnumerable<TimeSpan> TimesOfDayFrom(TimeSpan from)
    {
        for (var h = from.Hours; h < 24; h++)
        {
            if (!_hours[h]) continue;
            var m0 = h == from.Hours ? from.Minutes : 0;
            for (var m = m0; m < 60; m++)
            {
                if (!_minutes[m]) continue;
                var s0 = h == from.Hours && m == from.Minutes ? from.Seconds : 0;
                for (var s = s0; s < 60; s++)
                {
                    if (_seconds[s]) yield return new TimeSpan(h, m, s);
                }
            }
        }
    }

    private bool DayMatches(DateTime day)
    {
        if (!_months[day.Month]) return false;
        if (_years is not null && (day.Year < MinYear || !_years[day.Year - MinYear])) return false;
        var lastDay = DateTime.DaysInMonth(day.Year, day.Month);
        if (_dayOfMonthIsQuestion)
        {
            var dow = (int)day.DayOfWeek + 1;
            return _dowSpecial switch
            {
                DayOfWeekSpecial.LastOfMonth => dow == _dowArgument && day.Day + 7 > lastDay,
                DayOfWeekSpecial.Nth => dow == _dowArgument && (day.Day - 1) / 7 + 1 == _dowNth,
                _ => _daysOfWeek[dow],
            };
        }
        return _domSpecial switch
        {
            DayOfMonthSpecial.Last => day.Day == lastDay,
            DayOfMonthSpecial.LastOffset => day.Day == lastDay - _domArgument,
            DayOfMonthSpecial.NearestWeekday => day.Day == NearestWeekday(day.Year, day.Month, _domArgument, lastDay),
            DayOfMonthSpecial.LastWeekday => day.Day == NearestWeekday(day.Year, day.Month, lastDay, lastDay),
            _ => _daysOfMonth[day.Day],
        };
    }

    /// <summary>The weekday (Mon-Fri) nearest to day <paramref name="target"/>, never leaving the month; 0 if the month is too short.</summary>
    private static int NearestWeekday(int year, int month, int target, int lastDay)
    {
        if (target > lastDay) return 0;
        var dow = new DateTime(year, month, target, 0, 0, 0, DateTimeKind.Unspecified).DayOfWeek;
        return dow switch
        {
            DayOfWeek.Saturday => target == 1 ? 3 : target - 1,
            DayOfWeek.Sunday => target == lastDay ? target - 2 : target + 1,
            _ => target,
        };
    }
}

/// <summary>A cron syntax problem: <see cref="Offset"/> is the 0-based character index in the expression.</summary>
public sealed record CronError(int Offset, string Message);
