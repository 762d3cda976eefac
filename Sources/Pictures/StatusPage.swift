import APITypes

/// The agent's read-only status page (`GET /`) and its login form: plain HTML and
/// CSS, no framework, no external resource. With JavaScript, a few lines of it follow
/// the event stream (`EventSource` on `/v1/events/stream`) and update the page as
/// events happen; without, the page reloads itself every few seconds (a meta refresh
/// inside `<noscript>`). Pure: data in, HTML out.
public enum StatusPage {
    public struct VM: Sendable {
        public var info: VMInfo
        public var memorySVG: String
        public init(info: VMInfo, memorySVG: String) {
            self.info = info
            self.memorySVG = memorySVG
        }
    }

    public struct Input: Sendable {
        public var host: HostInfo
        public var vms: [VM]
        public var conversions: [ConversionEvent]
        public var denials: [ConversionEvent]
        /// When the policy in force was last applied, and by whom (nil without a store).
        public var policyApplied: PolicyHistoryEntry?
        public var drawnAt: String
        /// Seconds between reloads (without JavaScript).
        public var refreshSeconds: Int = 5
        /// The agent records: the page follows the event stream and shows each VM's history picture.
        public var live = false
        /// Where this agent answers (`http://127.0.0.1:8620`, `unix:///run/memgate.sock`): three agents' pages tell apart.
        public var endpoints: [String] = []
        /// When the page was drawn, for the relative times (nanoseconds since the epoch).
        public var nowNanos: UInt64 = 0
        /// The newest events of every kind, oldest first: the live table as the page loads.
        public var recentEvents: [EventEntry] = []
        /// The last event id the page shows: its stream starts after it, so nothing falls between.
        public var streamAfter: Int64?

        public init(
            host: HostInfo, vms: [VM], conversions: [ConversionEvent], denials: [ConversionEvent],
            policyApplied: PolicyHistoryEntry?, drawnAt: String
        ) {
            self.host = host
            self.vms = vms
            self.conversions = conversions
            self.denials = denials
            self.policyApplied = policyApplied
            self.drawnAt = drawnAt
        }
    }

    static let style = """
        body{font-family:sans-serif;margin:24px;color:#222;background:#fafafa}
        h1{font-size:20px}h2{font-size:16px;margin-top:28px}
        table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
        th{background:#eee}.vm{background:#fff;border:1px solid #ddd;padding:8px 12px;margin:12px 0}
        .muted{color:#666;font-size:12px}a{color:#1f5fbf}.map,.history{margin-top:6px}
        """

    static func escape(_ text: String) -> String { MemoryMapSVG.escape(text) }

    static func page(title: String, refresh: Int?, to target: String? = nil, scripted: Bool = false, body: String)
        -> String
    {
        var meta =
            refresh.map { "<meta http-equiv=\"refresh\" content=\"\($0)\(target.map { ";url=\($0)" } ?? "")\">" } ?? ""
        // A scripted page updates itself; only a browser without JavaScript needs the reload.
        if scripted { meta = "<noscript>\(meta)</noscript>" }
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">\(meta)<title>\(escape(title))</title>
            <style>\(style)</style></head><body>
            \(body)
            </body></html>

            """
    }

    static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

    static func conversionRows(_ rows: [ConversionEvent], names: [Int64: String], now: UInt64) -> String {
        guard !rows.isEmpty else { return "<p class=\"muted\">None.</p>" }
        var html =
            "<table><tr><th>time</th><th>event</th><th>VM</th><th>vCPU</th><th>gpa</th><th>size</th><th>direction</th><th>trigger</th>"
            + "<th>decision</th><th>reason</th></tr>"
        for row in rows {
            html +=
                "<tr><td>\(time(row.requestedNs, now: now))</td><td>\(row.eventId)</td><td>\(vmLabel(row.vmId, names))</td><td>\(row.vcpu)</td>"
                + "<td>\(hex(row.gpa))</td><td>\(humanBytes(row.size))</td><td>\(escape(row.direction))</td><td>\(escape(row.trigger))</td>"
                + "<td>\(escape(row.decision))</td><td>\(escape(row.reason))</td></tr>"
        }
        return html + "</table>"
    }

    /// The shared share of data RAM, as the CLI's bar and the SVG give it.
    static func sharedPercent(_ info: VMInfo) -> String {
        let data = info.privateBytes + info.sharedBytes
        return data == 0 ? "0.0%" : String(format: "%.1f%%", Double(info.sharedBytes) * 100 / Double(data))
    }

    public static func html(_ input: Input) -> String {
        let host = input.host
        let names = Dictionary(input.vms.map { ($0.info.id, $0.info.name) }, uniquingKeysWith: { first, _ in first })
        let at = input.endpoints.isEmpty ? "" : " at " + input.endpoints.map(escape).joined(separator: " and ")
        var body = "<h1>MemGate agent on \(escape(host.hostname))\(at)</h1>"
        body +=
            "<p class=\"muted\">Version \(escape(host.version)), kernel \(escape(host.kernel)), up \(uptime(host.uptimeSeconds)); "
            + "drawn \(escape(input.drawnAt))\(input.live ? ", updated live" : ", reloads every \(input.refreshSeconds) s").</p>"
        body += "<h2>Host</h2><table>"
        for backend in host.backends {
            body +=
                "<tr><th>backend \(escape(backend.name))</th><td>\(backend.usable ? "usable" : "not usable"): \(escape(backend.reason))</td></tr>"
        }
        body += "<tr><th>conversion transport</th><td>\(escape(host.conversionTransport))</td></tr>"
        if let alias = host.aliasMechanism {
            body +=
                "<tr><th>alias mechanism</th><td>\(escape(alias.chosen)) (probe: \(escape(alias.probeOutcome)))</td></tr>"
        }
        let capabilities = host.capabilities.sorted { $0.key < $1.key }.map { "\(escape($0.key))=\($0.value)" }.joined(
            separator: ", ")
        body += "<tr><th>capabilities</th><td>\(capabilities)</td></tr>"
        body +=
            "<tr><th>policy in force</th><td>\(host.policyName.map { "<b>\(escape($0))</b> " } ?? "")<code>\(escape(host.policyVersion))</code>"
        if let applied = input.policyApplied {
            body += ", applied \(time(applied.appliedNs, now: input.nowNanos)) by \(escape(applied.appliedBy))"
        }
        body += "</td></tr></table>"
        body += "<h2>VMs (\(input.vms.count))</h2>"
        if input.vms.isEmpty { body += "<p class=\"muted\">None.</p>" }
        for vm in input.vms { body += vmBlock(vm, input) }
        if input.live {
            body +=
                "<h2>Live events</h2><p class=\"muted\" id=\"live-status\">Events appear here as they happen (needs JavaScript).</p>"
                + "<table id=\"live\" data-after=\"\(input.streamAfter ?? 0)\"><tr><th>event</th><th>time</th><th>kind</th><th>VM</th><th>detail</th></tr>"
            for event in input.recentEvents.reversed() {
                body += liveRow(event, names: names, now: input.nowNanos) ?? ""
            }
            body += "</table>"
        }
        body += "<h2>Latest conversions</h2>" + conversionRows(input.conversions, names: names, now: input.nowNanos)
        body += "<h2>Latest denials</h2>" + conversionRows(input.denials, names: names, now: input.nowNanos)
        body += "<h2>JSON endpoints</h2><p>"
        body += [APIRoute.host, .vms, .conversions, .faults, .events, .policy, .policyHistory, .metrics].map(\.rawValue)
            .map { "<a href=\"\($0)\">\($0)</a>" }.joined(separator: " · ")
        body += "</p>"
        body += "<form method=\"post\" action=\"/logout\"><button type=\"submit\">Sign out</button></form>"
        // The times read "12 s ago" at any page: the ticker keeps them current even without a stream.
        body += "<script>\(timeScript)\(input.live ? liveScript : "")</script>"
        let title = "MemGate: \(host.hostname)" + (input.endpoints.first.map { " (\($0))" } ?? "")
        return page(title: title, refresh: input.refreshSeconds, scripted: input.live, body: body)
    }

    /// One VM: name, id, state and labels; its sizes in binary units (exact bytes in
    /// `data-bytes`, which the script counts with); its memory map, the form for a past
    /// moment, and its history chart.
    static func vmBlock(_ vm: VM, _ input: Input) -> String {
        let info = vm.info
        var html =
            "<div class=\"vm\" id=\"vm-\(info.id)\"><b>\(escape(info.name))</b> (VM \(info.id)): <b class=\"state\">\(escape(info.state))</b>"
        if let reason = info.reason { html += " — \(escape(reason))" }
        if !info.labels.isEmpty {
            html +=
                " "
                + info.labels.sorted { $0.key < $1.key }.map {
                    "<code class=\"label\">\(escape($0.key))=\(escape($0.value))</code>"
                }
                .joined(separator: " ")
        }
        html +=
            "<br><span class=\"muted\">\(escape(info.image)), \(info.memoryMib) MiB, \(info.vcpus) vCPU, \(escape(info.backend)), "
            + "created \(time(info.createdNs, now: input.nowNanos)); data RAM: private <span class=\"private\" data-bytes=\"\(info.privateBytes)\">"
            + "\(humanBytes(info.privateBytes))</span>, shared <span class=\"shared\" data-bytes=\"\(info.sharedBytes)\">\(humanBytes(info.sharedBytes))</span> "
            + "(\(Self.sharedPercent(info)) shared when drawn); \(info.memoryFaults) memory faults; "
            + "<a href=\"\(APIRoute.vm.path(info.id))\">JSON</a> · <a href=\"\(APIRoute.memory.path(info.id))\">memory</a> · "
            + "<a href=\"\(APIRoute.memorySVG.path(info.id))\">SVG</a></span><br>"
        html += "<div class=\"map\">" + vm.memorySVG + "</div>"
        // The map at any past moment, from the records (a plain GET form: no script needed).
        html +=
            "<form class=\"at\" method=\"get\" action=\"\(APIRoute.memorySVG.path(info.id))\"><label>memory at "
            + "<input name=\"at\" type=\"text\" size=\"24\" placeholder=\"2026-12-06T14:02:17Z or an event id\" required></label> "
            + "<button type=\"submit\">draw</button></form>"
        if input.live {
            html +=
                "<img class=\"history\" src=\"\(APIRoute.historySVG.path(info.id))\" alt=\"shared bytes of VM \(info.id) over time\">"
        }
        return html + "</div>"
    }

    /// `42 s`, `3 h 2 min`, `2 d 5 h`.
    static func uptime(_ seconds: Double) -> String {
        let whole = Int(max(seconds, 0))
        switch whole {
        case ..<120: return "\(whole) s"
        case ..<7_200: return "\(whole / 60) min"
        case ..<172_800: return "\(whole / 3_600) h \(whole / 60 % 60) min"
        default: return "\(whole / 86_400) d \(whole / 3_600 % 24) h"
        }
    }

    /// Keeps every `<time data-ns>` reading as a time ago, as `relative(_:now:)` writes it.
    static let timeScript = #"""
        function ago(ns){var s=Math.max(0,Math.floor((Date.now()-ns/1e6)/1000));
        return s<1?'just now':s<120?s+' s ago':s<7200?Math.floor(s/60)+' min ago':s<172800?Math.floor(s/3600)+' h ago':Math.floor(s/86400)+' d ago';}
        setInterval(function(){document.querySelectorAll('time[data-ns]').forEach(function(t){t.textContent=ago(+t.getAttribute('data-ns'));});},5000);

        """#

    /// Follows the event stream from the last event the page was drawn with: each event
    /// becomes a row of the live table (newest first, 50 kept) in the form `liveRow` writes;
    /// a conversion moves its VM's sizes and redraws its memory map (at most once a second);
    /// a VM's lifecycle event updates its state. EventSource reconnects by itself, sending
    /// Last-Event-ID: nothing is missed.
    static let liveScript = #"""
        (function(){
        if(!window.EventSource)return;
        var live=document.getElementById('live'),status=document.getElementById('live-status'),due={},names={};
        document.querySelectorAll('.vm').forEach(function(v){names[v.id.slice(3)]=v.querySelector('b').textContent;});
        function hb(n){var u=['B','KiB','MiB','GiB','TiB'],i=0;while(n>=1024&&i<4){n/=1024;i++;}return i?n.toFixed(1)+' '+u[i]:n+' B';}
        function utc(ns){return new Date(ns/1e6).toISOString().replace('T',' ').replace('Z',' UTC');}
        function label(vm){return vm===''?'':names[vm]!==undefined?names[vm]+' (VM '+vm+')':'VM '+vm;}
        function row(id,ns,kind,vm,detail){var r=live.insertRow(1);r.id='event-'+id;r.insertCell().textContent=id;
        var t=document.createElement('time');t.setAttribute('data-ns',ns);t.title=utc(ns);t.textContent=ago(ns);r.insertCell().appendChild(t);
        [kind,label(vm),detail].forEach(function(c){r.insertCell().textContent=c;});
        while(live.rows.length>51)live.deleteRow(51);}
        function redraw(vm){if(due[vm])return;due[vm]=setTimeout(function(){due[vm]=0;
        fetch('\#(APIRoute.memorySVG.path("'+vm+'"))').then(function(r){return r.ok?r.text():null;}).then(function(t){
        var m=document.querySelector('#vm-'+vm+' .map');if(t&&m)m.innerHTML=t;});},1000);}
        function move(el,d){var b=+el.getAttribute('data-bytes')+d;el.setAttribute('data-bytes',b);el.textContent=hb(b);}
        var es=new EventSource('\#(APIRoute.eventStream.path(query: "after="))'+(+live.getAttribute('data-after')||0));
        es.onopen=function(){status.textContent='Following this agent\u2019s events live.';};
        es.onerror=function(){status.textContent='Reconnecting to the event stream\u2026';};
        es.addEventListener('conversion',function(e){var c=JSON.parse(e.data).conversion;
        row(c.event_id,c.requested_ns,'conversion',c.vm_id,c.direction+' 0x'+c.gpa.toString(16)+' '+hb(c.size)+': '+c.decision+' ('+c.reason+')');
        var v=document.getElementById('vm-'+c.vm_id);
        if(v&&c.decision==='applied'){var d=c.direction==='to_shared'?c.changed_bytes:-c.changed_bytes;
        move(v.querySelector('.shared'),d);move(v.querySelector('.private'),-d);redraw(c.vm_id);}});
        es.addEventListener('memory_fault',function(e){var f=JSON.parse(e.data).memory_fault;
        row(f.event_id,f.time_ns,'memory fault',f.vm_id,(f.access||'unknown')+' 0x'+f.gpa.toString(16)+' ('+f.source+')');});
        ['vm_created','vm_started','vm_paused','vm_resumed','vm_ended'].forEach(function(k){es.addEventListener(k,function(e){
        var v=JSON.parse(e.data).vm_event,el=document.getElementById('vm-'+v.vm_id);
        if(v.vm_name!==undefined)names[v.vm_id]=v.vm_name;
        row(v.event_id,v.time_ns,k.replace('_',' '),v.vm_id,v.reason||'');
        if(el&&k!=='vm_created')el.querySelector('.state').textContent=v.final_state||k.slice(3);});});
        es.addEventListener('policy_applied',function(e){var p=JSON.parse(e.data).policy_application;
        row(p.event_id,p.applied_ns,'policy applied','',(p.name||'')+' '+p.version.slice(0,12)+' by '+p.applied_by);});
        es.addEventListener('overflow',function(){location.reload();});
        })();
        """#

    /// The sign-in form for TCP clients (the Unix socket needs none).
    public static func login(message: String?) -> String {
        var body =
            "<h1>MemGate agent</h1><p>Sign in with an API token (admin or read-only) to see this agent's status.</p>"
        if let message { body += "<p style=\"color:#b00\">\(escape(message))</p>" }
        body += """
            <form method="post" action="/login"><label>Token <input type="password" name="token" autocomplete="off" autofocus></label> \
            <button type="submit">Sign in</button></form>
            """
        return page(title: "MemGate: sign in", refresh: nil, body: body)
    }

    /// After a good sign-in: the cookie is set, and the page goes on to `/` (a same-site navigation).
    public static func signedIn() -> String {
        page(title: "MemGate: signed in", refresh: 0, to: "/", body: "<p>Signed in. <a href=\"/\">Continue</a>.</p>")
    }
}
