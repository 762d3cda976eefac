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
        public init(info: VMInfo, memorySVG: String) { self.info = info; self.memorySVG = memorySVG }
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

        public init(host: HostInfo, vms: [VM], conversions: [ConversionEvent], denials: [ConversionEvent],
                    policyApplied: PolicyHistoryEntry?, drawnAt: String) {
            self.host = host; self.vms = vms; self.conversions = conversions; self.denials = denials
            self.policyApplied = policyApplied; self.drawnAt = drawnAt
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

    static func page(title: String, refresh: Int?, to target: String? = nil, scripted: Bool = false, body: String) -> String {
        var meta = refresh.map { "<meta http-equiv=\"refresh\" content=\"\($0)\(target.map { ";url=\($0)" } ?? "")\">" } ?? ""
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

    static func conversionRows(_ rows: [ConversionEvent]) -> String {
        guard !rows.isEmpty else { return "<p class=\"muted\">None.</p>" }
        var html = "<table><tr><th>event</th><th>VM</th><th>vCPU</th><th>gpa</th><th>size</th><th>direction</th><th>trigger</th><th>decision</th><th>reason</th></tr>"
        for row in rows {
            html += "<tr><td>\(row.eventId)</td><td>\(row.vmId)</td><td>\(row.vcpu)</td><td>\(hex(row.gpa))</td><td>\(row.size)</td>"
                + "<td>\(escape(row.direction))</td><td>\(escape(row.trigger))</td><td>\(escape(row.decision))</td><td>\(escape(row.reason))</td></tr>"
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
        var body = "<h1>MemGate agent on \(escape(host.hostname))</h1>"
        body += "<p class=\"muted\">Version \(escape(host.version)), kernel \(escape(host.kernel)), up \(Int(host.uptimeSeconds)) s; drawn \(escape(input.drawnAt)), reloads every \(input.refreshSeconds) s.</p>"
        body += "<h2>Host</h2><table>"
        for backend in host.backends {
            body += "<tr><th>backend \(escape(backend.name))</th><td>\(backend.usable ? "usable" : "not usable"): \(escape(backend.reason))</td></tr>"
        }
        body += "<tr><th>conversion transport</th><td>\(escape(host.conversionTransport))</td></tr>"
        if let alias = host.aliasMechanism {
            body += "<tr><th>alias mechanism</th><td>\(escape(alias.chosen)) (probe: \(escape(alias.probeOutcome)))</td></tr>"
        }
        let capabilities = host.capabilities.sorted { $0.key < $1.key }.map { "\(escape($0.key))=\($0.value)" }.joined(separator: ", ")
        body += "<tr><th>capabilities</th><td>\(capabilities)</td></tr>"
        body += "<tr><th>policy in force</th><td>\(host.policyName.map { "<b>\(escape($0))</b> " } ?? "")<code>\(escape(host.policyVersion))</code>"
        if let applied = input.policyApplied {
            body += ", applied \(escape(utcSeconds(applied.appliedNs))) by \(escape(applied.appliedBy))"
        }
        body += "</td></tr></table>"
        body += "<h2>VMs (\(input.vms.count))</h2>"
        if input.vms.isEmpty { body += "<p class=\"muted\">None.</p>" }
        for vm in input.vms {
            let info = vm.info
            body += "<div class=\"vm\" id=\"vm-\(info.id)\"><b>\(escape(info.name))</b> (VM \(info.id)): <b class=\"state\">\(escape(info.state))</b>"
            if let reason = info.reason { body += " — \(escape(reason))" }
            body += "<br><span class=\"muted\">\(escape(info.image)), \(info.memoryMib) MiB, \(info.vcpus) vCPU, \(escape(info.backend)); "
                + "data RAM: private <span class=\"private\">\(info.privateBytes)</span> bytes, shared <span class=\"shared\">\(info.sharedBytes)</span> bytes "
                + "(\(Self.sharedPercent(info)) shared when drawn); \(info.memoryFaults) memory faults; "
                + "<a href=\"/v1/vms/\(info.id)\">JSON</a> · <a href=\"/v1/vms/\(info.id)/memory\">memory</a> · "
                + "<a href=\"/v1/vms/\(info.id)/memory.svg\">SVG</a></span><br>"
            body += "<div class=\"map\">" + vm.memorySVG + "</div>"
            // The map at any past moment, from the records (a plain GET form: no script needed).
            body += "<form class=\"at\" method=\"get\" action=\"/v1/vms/\(info.id)/memory.svg\"><label>memory at "
                + "<input name=\"at\" type=\"text\" size=\"24\" placeholder=\"2026-12-06T14:02:17Z or an event id\" required></label> "
                + "<button type=\"submit\">draw</button></form>"
            if input.live {
                body += "<img class=\"history\" src=\"/v1/vms/\(info.id)/history.svg\" alt=\"shared bytes of VM \(info.id) over time\">"
            }
            body += "</div>"
        }
        if input.live {
            body += "<h2>Live events</h2><p class=\"muted\" id=\"live-status\">Events appear here as they happen (needs JavaScript).</p>"
                + "<table id=\"live\"><tr><th>event</th><th>kind</th><th>VM</th><th>detail</th></tr></table>"
        }
        body += "<h2>Latest conversions</h2>" + conversionRows(input.conversions)
        body += "<h2>Latest denials</h2>" + conversionRows(input.denials)
        body += "<h2>JSON endpoints</h2><p>"
        body += ["/v1/host", "/v1/vms", "/v1/conversions", "/v1/memory-faults", "/v1/events", "/v1/policy", "/v1/policy/history", "/metrics"]
            .map { "<a href=\"\($0)\">\($0)</a>" }.joined(separator: " · ")
        body += "</p>"
        body += "<form method=\"post\" action=\"/logout\"><button type=\"submit\">Sign out</button></form>"
        if input.live { body += "<script>\(liveScript)</script>" }
        return page(title: "MemGate: \(host.hostname)", refresh: input.refreshSeconds, scripted: input.live, body: body)
    }

    /// Follows the event stream: each event becomes a row of the live table (newest first, 50 kept);
    /// a conversion moves its VM's byte counts and redraws its memory map (at most once a second);
    /// a VM's lifecycle event updates its state (a VM created since the page loaded appears in the table).
    /// EventSource reconnects by itself, sending Last-Event-ID: nothing is missed.
    static let liveScript = #"""
        (function(){
        if(!window.EventSource)return;
        var live=document.getElementById('live'),status=document.getElementById('live-status'),due={};
        function row(id,kind,vm,detail){var r=live.insertRow(1);r.id='event-'+id;
        [id,kind,vm,detail].forEach(function(t){r.insertCell().textContent=t;});
        while(live.rows.length>51)live.deleteRow(51);}
        function redraw(vm){if(due[vm])return;due[vm]=setTimeout(function(){due[vm]=0;
        fetch('/v1/vms/'+vm+'/memory.svg').then(function(r){return r.ok?r.text():null;}).then(function(t){
        var m=document.querySelector('#vm-'+vm+' .map');if(t&&m)m.innerHTML=t;});},1000);}
        var es=new EventSource('/v1/events/stream');
        es.onopen=function(){status.textContent='Following this agent\u2019s events live.';};
        es.onerror=function(){status.textContent='Reconnecting to the event stream\u2026';};
        es.addEventListener('conversion',function(e){var c=JSON.parse(e.data).conversion;
        row(c.event_id,'conversion',c.vm_id,c.direction+' 0x'+c.gpa.toString(16)+' '+c.size+' B: '+c.decision+' ('+c.reason+')');
        var v=document.getElementById('vm-'+c.vm_id);
        if(v&&c.decision==='applied'){var s=v.querySelector('.shared'),p=v.querySelector('.private'),d=c.direction==='to_shared'?c.changed_bytes:-c.changed_bytes;
        s.textContent=+s.textContent+d;p.textContent=+p.textContent-d;redraw(c.vm_id);}});
        es.addEventListener('memory_fault',function(e){var f=JSON.parse(e.data).memory_fault;
        row(f.event_id,'memory fault',f.vm_id,f.access+' 0x'+f.gpa.toString(16)+' ('+f.source+')');});
        ['vm_created','vm_started','vm_paused','vm_resumed','vm_ended'].forEach(function(k){es.addEventListener(k,function(e){
        var v=JSON.parse(e.data).vm_event,el=document.getElementById('vm-'+v.vm_id);
        row(v.event_id,k.replace('_',' '),v.vm_id,v.reason||'');
        if(el&&k!=='vm_created')el.querySelector('.state').textContent=v.final_state||k.slice(3);});});
        es.addEventListener('policy_applied',function(e){var p=JSON.parse(e.data).policy_application;
        row(p.event_id,'policy applied','',(p.name||'')+' '+p.version.slice(0,12)+' by '+p.applied_by);});
        es.addEventListener('overflow',function(){location.reload();});
        })();
        """#

    /// The sign-in form for TCP clients (the Unix socket needs none).
    public static func login(message: String?) -> String {
        var body = "<h1>MemGate agent</h1><p>Sign in with an API token (admin or read-only) to see this agent's status.</p>"
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
