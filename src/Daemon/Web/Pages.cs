using System.Net;

namespace Backupd.Daemon.Web;

/// <summary>
/// The two HTML pages. They are static shells: a script reads /api/status (or /api/domains/NAME) every second and
/// renders it with textContent only (names and error messages are never parsed as HTML).
/// </summary>
internal static class Pages
{
    private const string Style =
        """
        body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}
        table{border-collapse:collapse;min-width:40em}th,td{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:left;vertical-align:top}
        th{background:#f4f4f4}.fresh{background:#d9f2d9}.late{background:#fff0c2}.stale,.never,.failed,.interrupted,.bad{background:#f8d0d0}
        .bar{width:12em;height:.9em;background:#eee;display:inline-block;vertical-align:middle}.bar>div{height:100%;background:#3a7bd5}
        .err{color:#a00;white-space:pre-wrap}#catalog.down{color:#a00;font-weight:bold}small{color:#666}
        """;

    public static readonly string Overview =
        $$"""
        <!doctype html><html lang="en"><head><meta charset="utf-8"><title>backupd status</title><style>{{Style}}</style></head><body>
        <h1>backupd on <span id="host"></span></h1><p>catalog: <span id="catalog">…</span> · <small id="at"></small></p>
        <h2>Running jobs</h2><table id="jobs"><thead><tr><th>domain</th><th>policy</th><th>step</th><th>progress</th><th>started</th></tr></thead><tbody></tbody></table>
        <p id="nojobs">no backup is running</p>
        <h2>Domains</h2><table id="domains"><thead><tr><th>domain</th><th>policy</th><th>last success</th><th>next fire</th><th>last run</th><th>points</th><th>stored</th><th>consistency</th><th>damaged</th></tr></thead><tbody></tbody></table>
        <script>{{Common}}
        document.getElementById('host').textContent = location.host;
        async function tick() {
          let s;
          try { s = await (await fetch('api/status', {cache: 'no-store'})).json(); } catch (e) { return; }
          const c = document.getElementById('catalog'); c.textContent = s.catalogUp ? 'up' : 'DOWN'; c.className = s.catalogUp ? 'up' : 'down';
          document.getElementById('at').textContent = 'updated ' + new Date(s.at).toLocaleTimeString();
          const jobs = document.querySelector('#jobs tbody'); jobs.replaceChildren();
          for (const j of s.jobs) {
            const bar = el('span', '', 'bar'); const fill = el('div'); fill.style.width = (j.percent ?? 0) + '%'; bar.append(fill);
            const pct = el('span', j.percent == null ? size(j.bytes) : ' ' + j.percent.toFixed(1) + ' % of ' + size(j.total), 'pct');
            const cell = el('td'); cell.append(bar, pct);
            jobs.append(row([j.domain, j.policy ?? 'cli', j.step, cell, time(j.startedAt)], 'job', j.domain));
          }
          document.getElementById('nojobs').hidden = s.jobs.length > 0;
          const doms = document.querySelector('#domains tbody'); doms.replaceChildren();
          for (const d of s.domains) {
            const link = el('a', d.name); link.href = 'domains/' + encodeURIComponent(d.name);
            const last = el('td'); last.append(el('span', d.lastState ?? '-', d.lastState ?? ''));
            if (d.lastError) last.append(el('div', d.lastError, 'err'));
            const age = el('td', d.lastSuccess ? ago(d.ageSeconds) + ' ago' : 'never', d.staleness);
            age.dataset.staleness = d.staleness;
            doms.append(row([link, d.policy ?? '-', age, d.nextFire ? time(d.nextFire) : '-', last, String(d.points), size(d.repositoryBytes), d.newestConsistency ?? '-',
              el('td', String(d.damagedPoints), d.damagedPoints > 0 ? 'bad' : '')], 'domain', d.name));
          }
        }
        tick(); setInterval(tick, 1000);
        </script></body></html>
        """;

    public static string Domain(string name) =>
        $$"""
        <!doctype html><html lang="en"><head><meta charset="utf-8"><title>backupd: {{WebUtility.HtmlEncode(name)}}</title><style>{{Style}}</style></head><body>
        <p><a href="../">← overview</a></p><h1 id="name"></h1><p id="summary"></p>
        <h2>Restore points</h2><table id="points"><thead><tr><th>point</th><th>created</th><th>consistency</th><th>disks</th><th>stored</th><th>virtual</th><th>verify</th></tr></thead><tbody></tbody></table>
        <h2>Runs</h2><table id="runs"><thead><tr><th>run</th><th>started</th><th>state</th><th>step</th><th>read</th><th>written</th><th>error</th></tr></thead><tbody></tbody></table>
        <h2>Events</h2><table id="events"><thead><tr><th>at</th><th>kind</th><th>point</th><th>ok</th><th>detail</th></tr></thead><tbody></tbody></table>
        <script>{{Common}}
        const name = decodeURIComponent(location.pathname.split('/').pop());
        async function tick() {
          const r = await fetch('../api/domains/' + encodeURIComponent(name), {cache: 'no-store'});
          const d = await r.json();
          if (!r.ok) { document.getElementById('name').textContent = d.error; return; }
          document.getElementById('name').textContent = d.domain.name;
          document.getElementById('summary').textContent = `policy ${d.domain.policy ?? '-'} · last success ${d.domain.lastSuccess ? ago(d.domain.ageSeconds) + ' ago' : 'never'} (${d.domain.staleness}) · ${d.domain.points} points, ${size(d.domain.repositoryBytes)}`;
          const verify = {};
          for (const e of d.events) if ((e.kind === 'verify' || e.kind === 'damage') && e.pointId && !(e.pointId in verify)) verify[e.pointId] = e.ok ? 'ok' : 'damaged';
          fill('#points', d.points.map(p => row([p.id, time(p.createdAt), p.consistency ?? '-', String(p.disks), size(p.totalFileSize), size(p.totalVirtualSize),
            el('td', verify[p.id] ?? 'not verified', verify[p.id] === 'damaged' ? 'bad' : '')], 'point', p.id)));
          fill('#runs', d.runs.map(x => row([String(x.id), time(x.startedAt), el('td', x.state, x.state), x.step, size(x.bytesRead), size(x.bytesWritten), el('td', x.error ?? '', 'err')], 'run', String(x.id))));
          fill('#events', d.events.map(e => row([time(e.at), e.kind, e.pointId ?? '-', el('td', e.ok ? 'ok' : 'FAILED', e.ok ? '' : 'bad'), e.detail], 'event', String(e.id))));
        }
        function fill(sel, rows) { const b = document.querySelector(sel + ' tbody'); b.replaceChildren(...rows); }
        tick(); setInterval(tick, 2000);
        </script></body></html>
        """;

    private const string Common =
        """
        function el(tag, text, cls) { const e = document.createElement(tag); if (text != null) e.textContent = text; if (cls) e.className = cls; return e; }
        function row(cells, kind, key) { const tr = el('tr'); tr.dataset.kind = kind; tr.dataset.key = key; for (const c of cells) tr.append(typeof c === 'string' ? el('td', c) : c.tagName === 'TD' ? c : wrap(c)); return tr; }
        function wrap(c) { const td = el('td'); td.append(c); return td; }
        function size(n) { if (n == null) return '-'; const u = ['B','KiB','MiB','GiB','TiB']; let i = 0; while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; } return n.toFixed(i ? 1 : 0) + ' ' + u[i]; }
        function time(t) { return new Date(t.endsWith('Z') || t.includes('+') ? t : t + 'Z').toISOString().replace('T', ' ').slice(0, 19) + ' UTC'; }
        function ago(s) { return s < 120 ? Math.round(s) + ' s' : s < 7200 ? Math.round(s / 60) + ' min' : s < 172800 ? (s / 3600).toFixed(1) + ' h' : (s / 86400).toFixed(1) + ' d'; }
        """;
}
