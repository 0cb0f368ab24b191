using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Backupd.Daemon.Observability;

/// <summary>
/// Writes the instruments of one <see cref="Meter"/> in the Prometheus text exposition format (version 0.0.4).
/// A <see cref="MeterListener"/> aggregates counters (sums) and histograms (cumulative buckets) as they are
/// recorded; observable gauges are polled at each scrape. Why not prometheus-net or OpenTelemetry: docs/operations.md.
/// </summary>
public sealed class PrometheusExporter : IDisposable
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly MeterListener _listener = new();
    private readonly Lock _lock = new();
    private readonly Dictionary<Instrument, Dictionary<string, double>> _sums = [];
    private readonly Dictionary<Instrument, Dictionary<string, HistogramState>> _histograms = [];
    private Dictionary<Instrument, Dictionary<string, double>>? _gauges;

    public PrometheusExporter(string meterName)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == meterName) listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        _listener.Start();
    }

    private sealed class HistogramState(int buckets)
    {
        public readonly long[] Counts = new long[buckets + 1];
        public double Sum;
        public long Count;
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var labels = Labels(tags);
        lock (_lock)
        {
            if (instrument.IsObservable)
            {
                if (_gauges is null) return; // only during a scrape
                Get(_gauges, instrument)[labels] = value;
            }
            else if (instrument is Histogram<double> or Histogram<long>)
            {
                var states = Get(_histograms, instrument);
                if (!states.TryGetValue(labels, out var state)) states[labels] = state = new HistogramState(BackupdMetrics.DurationBuckets.Length);
                var bucket = Array.FindIndex(BackupdMetrics.DurationBuckets, b => value <= b);
                state.Counts[bucket < 0 ? BackupdMetrics.DurationBuckets.Length : bucket]++;
                state.Sum += value;
                state.Count++;
            }
            else
            {
                var sums = Get(_sums, instrument);
                sums[labels] = sums.GetValueOrDefault(labels) + value;
            }
        }
    }

    private static Dictionary<string, T> Get<T>(Dictionary<Instrument, Dictionary<string, T>> map, Instrument instrument)
    {
        if (!map.TryGetValue(instrument, out var inner)) map[instrument] = inner = new Dictionary<string, T>(StringComparer.Ordinal);
        return inner;
    }

    /// <summary>The whole exposition, instruments in name order (scrapes are small: one series per domain and metric).</summary>
    public string Scrape()
    {
        var text = new StringBuilder();
        lock (_lock)
        {
            _gauges = [];
            try { _listener.RecordObservableInstruments(); }
            finally
            {
                var gauges = _gauges;
                _gauges = null;
                foreach (var (instrument, series) in gauges.OrderBy(g => g.Key.Name, StringComparer.Ordinal)) Write(text, instrument, "gauge", series);
            }
            foreach (var (instrument, series) in _sums.OrderBy(g => g.Key.Name, StringComparer.Ordinal))
                Write(text, instrument, instrument.GetType().Name.StartsWith("UpDown", StringComparison.Ordinal) ? "gauge" : "counter", series);
            foreach (var (instrument, series) in _histograms.OrderBy(g => g.Key.Name, StringComparer.Ordinal))
            {
                Header(text, instrument, "histogram");
                foreach (var (labels, state) in series.OrderBy(s => s.Key, StringComparer.Ordinal))
                {
                    long cumulative = 0;
                    for (var b = 0; b <= BackupdMetrics.DurationBuckets.Length; b++)
                    {
                        cumulative += state.Counts[b];
                        var le = b < BackupdMetrics.DurationBuckets.Length ? Number(BackupdMetrics.DurationBuckets[b]) : "+Inf";
                        text.Append(instrument.Name).Append("_bucket{").Append(labels).Append(labels.Length > 0 ? "," : "").Append("le=\"").Append(le).Append("\"} ").Append(cumulative).Append('\n');
                    }
                    text.Append(instrument.Name).Append("_sum").Append(Braces(labels)).Append(' ').Append(Number(state.Sum)).Append('\n');
                    text.Append(instrument.Name).Append("_count").Append(Braces(labels)).Append(' ').Append(state.Count).Append('\n');
                }
            }
        }
        return text.ToString();
    }

    private static void Write(StringBuilder text, Instrument instrument, string type, Dictionary<string, double> series)
    {
        Header(text, instrument, type);
        foreach (var (labels, value) in series.OrderBy(s => s.Key, StringComparer.Ordinal))
            text.Append(instrument.Name).Append(Braces(labels)).Append(' ').Append(Number(value)).Append('\n');
    }

    private static void Header(StringBuilder text, Instrument instrument, string type)
    {
        if (instrument.Description is { Length: > 0 } help) text.Append("# HELP ").Append(instrument.Name).Append(' ').Append(help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)).Append('\n');
        text.Append("# TYPE ").Append(instrument.Name).Append(' ').Append(type).Append('\n');
    }

    private static string Braces(string labels) => labels.Length == 0 ? "" : "{" + labels + "}";

    /// <summary>Labels sorted by name, values escaped as the format asks (backslash, quote, newline).</summary>
    internal static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.IsEmpty) return "";
        var pairs = tags.ToArray().OrderBy(t => t.Key, StringComparer.Ordinal);
        return string.Join(",", pairs.Select(t => $"{t.Key}=\"{Escape(Convert.ToString(t.Value, CultureInfo.InvariantCulture) ?? "")}\""));
    }

    private static string Escape(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static string Number(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf" : double.IsNegativeInfinity(value) ? "-Inf" : double.IsNaN(value) ? "NaN" : value.ToString("R", CultureInfo.InvariantCulture);

    public void Dispose() => _listener.Dispose();
}
