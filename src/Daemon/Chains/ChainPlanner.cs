namespace Backupd.Daemon.Chains;

/// <summary>
/// What a shorten will do to one disk. Indexes are into the chain (0 = active layer). Commit writes the layers
/// <c>0..WrittenInto-1</c> (or <c>1..WrittenInto-1</c> when the active layer stays) into <see cref="WrittenInto"/>;
/// pull copies the layers <c>1..NewBacking-1</c> into the active layer.
/// </summary>
public sealed record ChainPlan(
    string Target,
    ShortenMethod Method,
    bool ActiveCommit,
    int? TopIndex,
    int? BaseIndex,
    int WrittenInto,
    IReadOnlyList<int> MergedAway,
    int NewActive,
    int DepthBefore,
    int DepthAfter)
{
    /// <summary>One line for the operator (and --dry-run).</summary>
    public string Describe(IReadOnlyList<ChainLayer> layers) => Method == ShortenMethod.Commit
        ? $"{(ActiveCommit ? "active commit (then pivot)" : "intermediate commit")} of {string.Join(", ", MergedAway.Select(i => $"[{i}] {layers[i].Path}"))} into [{WrittenInto}] {layers[WrittenInto].Path}; depth {DepthBefore} -> {DepthAfter}"
        : $"pull of {(MergedAway.Count == 0 ? "nothing" : string.Join(", ", MergedAway.Select(i => $"[{i}] {layers[i].Path}")))} into the active layer [0] {layers[0].Path}" +
          $"{(BaseIndex is { } b ? $", which then sits on [{b}] {layers[b].Path}" : ", which then stands alone")}; depth {DepthBefore} -> {DepthAfter}";
}

/// <summary>
/// Pure planning of a shorten (unit-tested): from the chain, the wanted depth or the layer to merge into, and the
/// method, which job runs on which layers, and whether any other domain stands in the way.
/// </summary>
public static class ChainPlanner
{
    /// <param name="depth">Wanted number of images (1: one standalone image); or null with <paramref name="into"/>.</param>
    /// <param name="into">A layer by path or [index]: commit merges everything above it (the active layer included) into it; pull makes it the active layer's backing file.</param>
    public static ChainPlan Plan(DiskChain chain, ShortenMethod method, int? depth, string? into, string domainUuid)
    {
        var layers = chain.Layers;
        var d = layers.Count;
        if (layers.FirstOrDefault(l => l.Missing) is { } missing)
            throw new ChainRefusedException($"disk {chain.Target}: backing file '{missing.Path}' is missing; nothing can be merged until it is back");
        if (depth is null == (into is null))
            throw new ChainRefusedException("give exactly one of --depth N or --into LAYER", FailureKind.Usage);

        ChainPlan plan;
        if (depth is { } n)
        {
            if (n < 1) throw new ChainRefusedException($"--depth must be at least 1, got {n}", FailureKind.Usage);
            if (n >= d) throw new ChainRefusedException($"disk {chain.Target} has depth {d}, not more than {n}: nothing to shorten", FailureKind.NothingToDo);
            plan = method == ShortenMethod.Commit
                ? n == 1
                    // Everything into the base: the active layer too, so an active commit and a pivot.
                    ? Commit(chain, active: true, top: 0, baseIndex: d - 1)
                    // Keep the active layer (no pivot): the layers 1..j-1 go into j, so that 1 + (d - j) = n.
                    : Commit(chain, active: false, top: 1, baseIndex: d - n + 1)
                : Pull(chain, n == 1 ? null : d - n + 1);
        }
        else
        {
            var target = Find(chain, into!);
            if (target == 0) throw new ChainRefusedException($"'{into}' is the active layer of {chain.Target}: nothing is above it", FailureKind.NothingToDo);
            plan = method == ShortenMethod.Commit ? Commit(chain, active: true, top: 0, baseIndex: target) : Pull(chain, target);
            if (method == ShortenMethod.Pull && target == 1)
                throw new ChainRefusedException($"'{into}' already is the backing file of the active layer: nothing to pull", FailureKind.NothingToDo);
        }
        CheckOthers(chain, plan, domainUuid);
        return plan;
    }

    private static ChainPlan Commit(DiskChain chain, bool active, int top, int baseIndex)
    {
        var merged = Enumerable.Range(top, baseIndex - top).ToList();
        var after = active ? chain.Depth - baseIndex : chain.Depth - merged.Count;
        return new ChainPlan(chain.Target, ShortenMethod.Commit, active, top, baseIndex, baseIndex, merged, active ? baseIndex : 0, chain.Depth, after);
    }

    private static ChainPlan Pull(DiskChain chain, int? newBacking)
    {
        var end = newBacking ?? chain.Depth;
        var merged = Enumerable.Range(1, end - 1).ToList();
        return new ChainPlan(chain.Target, ShortenMethod.Pull, false, null, newBacking, 0, merged, 0, chain.Depth, chain.Depth - merged.Count);
    }

    /// <summary>
    /// A commit changes the layer it writes into, so every domain whose chain contains that layer, or a layer
    /// above it (which reads through it), would see its disk change under it. A pull only writes the active layer.
    /// </summary>
    private static void CheckOthers(DiskChain chain, ChainPlan plan, string domainUuid)
    {
        var affected = Enumerable.Range(0, plan.WrittenInto + 1);
        var others = affected.SelectMany(i => chain.Layers[i].UsedBy.Where(u => !string.Equals(u.Uuid, domainUuid, StringComparison.OrdinalIgnoreCase))
            .Select(u => (Layer: chain.Layers[i], User: u))).ToList();
        if (others.Count == 0) return;
        var names = string.Join(", ", others.Select(o => o.User.Domain).Distinct(StringComparer.Ordinal));
        var where = string.Join("; ", others.GroupBy(o => o.Layer.Path).Select(g => $"'{g.Key}' is used by {string.Join(", ", g.Select(o => $"{o.User.Domain} ({o.User.Definition} {o.User.Target})").Distinct())}"));
        throw plan.Method == ShortenMethod.Commit
            ? new ChainRefusedException($"refusing to commit into '{chain.Layers[plan.WrittenInto].Path}' of disk {chain.Target}: other domains use it or read through it ({names}), and their disks would change under them: {where}. " +
                "Use --method pull (it writes only this domain's active layer); --dry-run shows the plan", FailureKind.SharedLayer)
            : new ChainRefusedException($"refusing to pull into '{chain.Layers[0].Path}' of disk {chain.Target}: other domains use it ({names}): {where}", FailureKind.SharedLayer);
    }

    /// <summary>A layer named by its path (as shown, or resolved) or by [N] / N.</summary>
    private static int Find(DiskChain chain, string into)
    {
        var text = into.Trim().TrimStart('[').TrimEnd(']');
        if (int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index))
            return index < chain.Depth ? index : throw new ChainRefusedException($"disk {chain.Target} has layers [0]..[{chain.Depth - 1}], not [{index}]", FailureKind.Usage);
        var real = RealPath.Of(into);
        var found = chain.Layers.FirstOrDefault(l => l.Path == into || RealPath.Of(l.Path) == real);
        return found?.Index ?? throw new ChainRefusedException(
            $"'{into}' is not a layer of disk {chain.Target} (layers: {string.Join(", ", chain.Layers.Select(l => $"[{l.Index}] {l.Path}"))})", FailureKind.Usage);
    }
}
