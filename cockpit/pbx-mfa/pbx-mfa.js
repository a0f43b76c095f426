/* The pbx-mfa Cockpit page. It runs the pbx-mfa command line tool and nothing else
 * (cockpit.spawn, --json): no file access, no cryptography here. Keys, codes and passwords go
 * to the tool on standard input, never in its arguments; they are shown only in the elements
 * that must show them and cleared after Activate or Cancel. Names from the tool reach the page
 * through textContent only, and the tool's arguments as --user=NAME or after "--", so that no
 * name can pass for an option. */
"use strict";

(function () {
    const STALE_DAYS = 90;
    const QR_QUIET = 4;   // modules of white around the code (the QR standard's quiet zone)
    const QR_SCALE = 6;   // pixels per module

    const $ = (id) => document.getElementById(id);

    // What an enrollment in progress needs between --begin and --finish.
    let pending = null;   // { kind: "enroll" | "device", key, device }
    let users = [];       // the administrator's report (pbx-mfa list --json)
    let stateKnown = true; // false: status could not read the state (root's); set with the status

    /* ---- running the tool --------------------------------------------------------------- */

    function parse(text) {
        if (!text)
            return null;
        try {
            return JSON.parse(text);
        } catch (e) {
            return null;
        }
    }

    /* Runs `pbx-mfa ARGS` with INPUT on stdin (or an empty stdin). Always resolves, to
     * { ok, json, message, exit, problem }: a refusal's JSON arrives on stdout with a
     * non-zero exit, which cockpit.spawn hands to the failure callback as its 2nd argument. */
    function run(args, input, options) {
        const opts = Object.assign({ err: "message" }, options || {});
        const proc = cockpit.spawn(["pbx-mfa"].concat(args), opts);
        proc.input(input === undefined ? null : input);
        return new Promise((resolve) => {
            proc.then(
                (data) => resolve({ ok: true, json: parse(data), message: "", exit: 0 }),
                (ex, data) => resolve({
                    ok: false,
                    json: parse(data),
                    message: (ex && ex.message) || cockpit.message(ex),
                    exit: ex ? ex.exit_status : null,
                    problem: ex ? ex.problem : null,
                }));
        });
    }

    function refusal(res) {
        if (res.problem === "not-found")
            return "The pbx-mfa command is not installed on this server (package pbx-mfa).";
        const err = res.json && res.json.error;
        const messages = {
            "wrong-code": "Wrong code: type the code your app shows now (check the phone's clock).",
            "wrong-password": "Wrong password: type the password you log in with.",
            "wrong-existing-code": "Wrong code for a device you already use: type the code one of your current devices shows now.",
            "no-answer": "Type the code from the app and your password.",
            "enrolled": "You are already set up: use Add a device for another phone.",
            "invalid-key": "This setup is no longer valid: start again.",
        };
        if (err && messages[err])
            return messages[err];
        if (res.json && res.json.message)
            return res.json.message;
        return res.message || "pbx-mfa failed (exit status " + res.exit + ").";
    }

    function say(text, kind) {
        const el = $("pbx-message");
        el.textContent = text || "";
        el.classList.toggle("pbx-error", kind === "error");
        el.classList.toggle("pbx-success", kind === "success");
    }

    function sayAdmin(text, kind) {
        const el = $("pbx-admin-result");
        el.textContent = text || "";
        el.classList.toggle("pbx-error", kind === "error");
        el.classList.toggle("pbx-success", kind === "success");
    }

    function when(iso, never) {
        if (!iso)
            return never;
        const d = new Date(iso);
        return isNaN(d.getTime()) ? String(iso) : d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
    }

    /* ---- the dialog (confirmations, a password) ------------------------------------------ */

    function ask(text, wantPassword) {
        return new Promise((resolve) => {
            const dialog = $("pbx-dialog");
            const pw = $("pbx-dialog-password");
            $("pbx-dialog-text").textContent = text;
            $("pbx-dialog-password-row").hidden = !wantPassword;
            pw.value = "";
            dialog.hidden = false;
            (wantPassword ? pw : $("pbx-dialog-ok")).focus();
            function done(answer) {
                $("pbx-dialog-ok").removeEventListener("click", yes);
                $("pbx-dialog-cancel").removeEventListener("click", no);
                pw.removeEventListener("keydown", key);
                dialog.hidden = true;
                const value = pw.value;
                pw.value = "";
                resolve(answer ? { password: value } : null);
            }
            function yes() { done(true) }
            function no() { done(false) }
            function key(ev) { if (ev.key === "Enter") done(true) }
            $("pbx-dialog-ok").addEventListener("click", yes);
            $("pbx-dialog-cancel").addEventListener("click", no);
            pw.addEventListener("keydown", key);
        });
    }

    /* ---- the user's own status ------------------------------------------------------------ */

    function row(dl, term, value) {
        const dt = document.createElement("dt");
        dt.textContent = term;
        const dd = document.createElement("dd");
        dd.textContent = value;
        dl.append(dt, dd);
    }

    function devicesText(devices) {
        if (Array.isArray(devices))
            return devices.length ? devices.map((d) => (typeof d === "string" ? d : d.name)).join(", ") : "none";
        if (typeof devices === "number")
            return String(devices);
        return "—";
    }

    async function loadStatus() {
        const el = $("pbx-status");
        const res = await run(["status", "--json"]);
        const st = res.json;
        el.textContent = "";
        if (!st || st.error || typeof st.enrolled !== "boolean") {
            // Setting up still works: `enroll --finish` refuses ("enrolled") if it is done.
            el.setAttribute("data-enrolled", "unknown");
            el.textContent = "Your two-factor status cannot be read: " + refusal(res);
            $("pbx-setup").hidden = res.problem === "not-found" || pending !== null;
            return;
        }
        el.setAttribute("data-enrolled", st.enrolled ? "true" : "false");
        const head = document.createElement("p");
        head.textContent = st.enrolled
            ? "Two-factor authentication is on for " + st.user + "."
            : "Two-factor authentication is not set up for " + st.user + "." +
              (st.required ? " It is required for your account: set it up now." : "");
        el.append(head);
        if (st.enrolled) {
            const dl = document.createElement("dl");
            row(dl, "Devices", devicesText(st.devices));
            /* null: the state is root's (state_dir) and this page runs as the user: the CLI
             * cannot tell these, an administrator's `pbx-mfa status --user` can. */
            stateKnown = st.recovery_codes_left !== null;
            const unknown = "known to administrators only";
            row(dl, "Recovery codes left", stateKnown ? String(st.recovery_codes_left) : unknown);
            row(dl, "Last login with a code", stateKnown ? when(st.last_success, "never") : unknown);
            if (st.locked_until)
                row(dl, "Locked until", when(st.locked_until, ""));
            el.append(dl);
        }
        $("pbx-setup").hidden = st.enrolled || pending !== null;
        $("pbx-add-device").hidden = !st.enrolled;
        $("pbx-new-recovery").hidden = !st.enrolled || !stateKnown;
        if (st.enrolled)
            loadDevices();
        else
            $("pbx-devices-box").hidden = true;
    }

    async function loadDevices() {
        const res = await run(["device", "list", "--json"]);
        const list = $("pbx-devices");
        list.textContent = "";
        const devices = res.json && Array.isArray(res.json.devices) ? res.json.devices : null;
        $("pbx-devices-box").hidden = !devices;
        if (!devices)
            return;
        for (const dev of devices) {
            const li = document.createElement("li");
            const name = document.createElement("span");
            name.textContent = dev.name + " — added " + when(dev.created, "?") +
                (stateKnown ? ", last used " + when(dev.last_used, "never") : "");
            li.append(name);
            if (devices.length > 1) {
                const rm = document.createElement("button");
                rm.type = "button";
                rm.className = "pbx-small pbx-danger";
                rm.textContent = "Remove";
                rm.setAttribute("data-device", dev.name);
                rm.addEventListener("click", () => removeDevice(dev.name));
                li.append(rm);
            }
            list.append(li);
        }
    }

    async function removeDevice(name) {
        const answer = await ask("Remove the device \u201c" + name + "\u201d? Its codes stop working.", true);
        if (!answer)
            return;
        const res = await run(["device", "remove", "--json", "--", name], answer.password + "\n");
        answer.password = "";
        if (res.ok)
            say("Device \u201c" + name + "\u201d removed.", "success");
        else
            say(refusal(res), "error");
        loadStatus();
    }

    /* ---- setting up: QR code, key, code, password ------------------------------------------ */

    function drawQr(modules) {
        const canvas = $("pbx-qr");
        const n = modules.length;
        const size = (n + 2 * QR_QUIET) * QR_SCALE;
        canvas.width = size;
        canvas.height = size;
        const ctx = canvas.getContext("2d");
        ctx.fillStyle = "#ffffff";
        ctx.fillRect(0, 0, size, size);
        ctx.fillStyle = "#000000";
        for (let y = 0; y < n; y++) {
            const line = modules[y];
            for (let x = 0; x < line.length; x++) {
                if (line[x] === "1")
                    ctx.fillRect((x + QR_QUIET) * QR_SCALE, (y + QR_QUIET) * QR_SCALE, QR_SCALE, QR_SCALE);
            }
        }
        canvas.hidden = false;
    }

    function clearSetup() {
        pending = null;
        const canvas = $("pbx-qr");
        const ctx = canvas.getContext("2d");
        ctx.clearRect(0, 0, canvas.width, canvas.height);
        canvas.width = 0;
        canvas.height = 0;
        canvas.hidden = true;
        $("pbx-secret").textContent = "";
        for (const id of ["pbx-code", "pbx-password", "pbx-existing-code", "pbx-device-name", "pbx-new-device-name"])
            $(id).value = "";
        $("pbx-setup-panel").hidden = true;
        $("pbx-device-begin").hidden = true;
    }

    function showSetup(json, kind, device) {
        const modules = json.qr && Array.isArray(json.qr.modules) ? json.qr.modules : null;
        if (!json.secret || !modules) {
            say("pbx-mfa gave no key or QR code.", "error");
            return;
        }
        pending = { kind: kind, key: json.secret.replace(/\s+/g, ""), device: device };
        drawQr(modules);
        $("pbx-secret").textContent = json.secret_grouped || json.secret;
        $("pbx-setup-title").textContent = kind === "device"
            ? "Add the device \u201c" + device + "\u201d"
            : "Set up your authenticator app";
        $("pbx-existing-row").hidden = kind !== "device";
        $("pbx-setup-panel").hidden = false;
        $("pbx-setup").hidden = true;
        $("pbx-code").focus();
    }

    async function beginSetup() {
        say("");
        hideRecovery();
        const res = await run(["enroll", "--begin", "--json"]);
        if (!res.ok || !res.json) {
            say(refusal(res), "error");
            return;
        }
        showSetup(res.json, "enroll");
    }

    function beginDevice() {
        say("");
        hideRecovery();
        $("pbx-device-begin").hidden = false;
        $("pbx-new-device-name").focus();
    }

    async function beginDeviceNamed() {
        const name = $("pbx-new-device-name").value.trim();
        /* The CLI's rule (pbx-mfa device add): 1 to 32 of a-z, 0-9 and '-'; checked here too so
         * the user hears it before a key is made. */
        if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(name)) {
            say("Give the new device a name of 1 to 32 lower-case letters, digits and '-' " +
                "(for example \u201cwork-phone\u201d).", "error");
            return;
        }
        const res = await run(["device", "add", "--begin", "--json", "--", name]);
        if (!res.ok || !res.json) {
            say(refusal(res), "error");
            return;
        }
        $("pbx-device-begin").hidden = true;
        showSetup(res.json, "device", name);
    }

    async function activate() {
        if (!pending)
            return;
        const code = $("pbx-code").value.trim();
        const password = $("pbx-password").value;
        const existing = $("pbx-existing-code").value.trim();
        if (!code || !password || (pending.kind === "device" && !existing)) {
            say(pending.kind === "device"
                ? "Type the new device's code, your password and a code from a device you already use."
                : "Type the code from the app and your password.", "error");
            return;
        }
        const button = $("pbx-activate");
        button.disabled = true;
        button.textContent = "Checking…";
        say("");
        let res;
        if (pending.kind === "device") {
            res = await run(["device", "add", "--finish", "--json", "--", pending.device],
                            pending.key + "\n" + code + "\n" + password + "\n" + existing + "\n");
        } else {
            res = await run(["enroll", "--finish", "--json"], pending.key + "\n" + code + "\n" + password + "\n");
        }
        button.disabled = false;
        button.textContent = "Activate";
        if (!res.ok) {
            say(refusal(res), "error");
            $("pbx-password").value = "";
            return;
        }
        const kind = pending.kind;
        const device = pending.device;
        clearSetup();
        if (kind === "device") {
            say("Device \u201c" + device + "\u201d added: its codes work from now on.", "success");
        } else {
            say("Two-factor authentication is on: your next login asks for a code.", "success");
            showRecovery(res.json && res.json.recovery_codes);
        }
        loadStatus();
    }

    function cancel() {
        clearSetup();
        say("");
        loadStatus();
    }

    function showRecovery(codes) {
        const list = $("pbx-recovery");
        list.textContent = "";
        if (!Array.isArray(codes) || codes.length === 0)
            return;
        for (const c of codes) {
            const li = document.createElement("li");
            li.textContent = c;
            list.append(li);
        }
        $("pbx-recovery-box").hidden = false;
    }

    function hideRecovery() {
        $("pbx-recovery").textContent = "";
        $("pbx-recovery-box").hidden = true;
    }

    async function newRecovery() {
        if (!await ask("Make new recovery codes? The codes you have now stop working.", false))
            return;
        hideRecovery();
        const res = await run(["recovery-codes", "--json"]);
        if (!res.ok) {
            say(refusal(res), "error");
            return;
        }
        say("New recovery codes made.", "success");
        showRecovery(res.json && res.json.recovery_codes);
        loadStatus();
    }

    /* ---- administrators: every user ------------------------------------------------------- */

    function isLocked(u) {
        return !!u.locked_until && new Date(u.locked_until).getTime() > Date.now();
    }

    function isStale(u) {
        if (!u.enrolled)
            return false;
        if (!u.last_success)
            return true;
        return Date.now() - new Date(u.last_success).getTime() > STALE_DAYS * 86400 * 1000;
    }

    function matches(u, filter) {
        switch (filter) {
        case "not-enrolled": return u.required && !u.enrolled;
        case "locked": return isLocked(u);
        case "stale": return isStale(u);
        default: return true;
        }
    }

    function applyFilter() {
        const filter = $("pbx-filter").value;
        for (const tr of $("pbx-users-body").querySelectorAll("tr[data-user]")) {
            const u = users.find((x) => x.user === tr.getAttribute("data-user"));
            tr.hidden = !u || !matches(u, filter);
        }
    }

    function cell(tr, text, bad) {
        const td = document.createElement("td");
        td.textContent = text;
        if (bad)
            td.className = "pbx-flag-bad";
        tr.append(td);
        return td;
    }

    const ACTIONS = {
        "require": {
            // A mark of `pbx-mfa require` can be taken back; a rule of the configuration cannot.
            shown: (u) => !u.exempt && (!u.required || u.required_by === "marked"),
            label: (u) => (u.required ? "Stop requiring" : "Require"),
            question: (u) => (u.required
                ? "Stop requiring two-factor authentication for " + u.user + "? (A requirement of the configuration stays.)"
                : "Require two-factor authentication for " + u.user + "? Their next login needs it."),
            args: (u) => ["require", "--user=" + u.user].concat(u.required ? ["--off"] : []),
        },
        "unlock": {
            shown: (u) => isLocked(u),
            label: () => "Unlock",
            question: (u) => "Unlock " + u.user + "? Their failed attempts are forgotten.",
            args: (u) => ["unlock", "--user=" + u.user],
        },
        "temp-code": {
            shown: (u) => !u.exempt && (u.enrolled || u.required),
            label: () => "Temporary code",
            question: (u) => "Make a temporary code for " + u.user + "? Give it to them by phone or in person.",
            args: (u) => ["temp-code", "--user=" + u.user, "--json"],
        },
        "reset": {
            shown: (u) => u.enrolled,
            label: () => "Reset",
            question: (u) => "Reset " + u.user + "? Their authenticator and recovery codes stop working; they must set up again.",
            args: (u) => ["reset", "--user=" + u.user],
        },
    };

    async function adminAction(u, action) {
        const a = ACTIONS[action];
        if (!await ask(a.question(u), false))
            return;
        sayAdmin("Running…");
        const res = await run(a.args(u), undefined, { superuser: "require" });
        if (!res.ok) {
            sayAdmin(u.user + ": " + refusal(res), "error");
            return;
        }
        const el = $("pbx-admin-result");
        el.classList.remove("pbx-error");
        el.classList.add("pbx-success");
        if (action === "temp-code" && res.json && res.json.code) {
            el.textContent = "Temporary code for " + res.json.user + ": ";
            const code = document.createElement("code");
            code.id = "pbx-temp-code";
            code.textContent = res.json.code;
            el.append(code, document.createTextNode(
                " — valid until " + when(res.json.expires, "?") + ", for " + res.json.uses + " login(s)."));
        } else {
            const done = { "require": u.required ? "no longer required" : "required", "unlock": "unlocked", "reset": "reset" };
            el.textContent = u.user + ": " + done[action] + ".";
        }
        loadUsers(true);
    }

    async function loadUsers(keepMessage) {
        if (!keepMessage)
            sayAdmin("");
        $("pbx-users").setAttribute("data-loading", "1");
        const res = await run(["list", "--json"], undefined, { superuser: "require" });
        $("pbx-users").setAttribute("data-loading", "0");
        // `list` exits 1 while a required user is not enrolled: the report is on stdout anyway.
        if (!res.json || !Array.isArray(res.json.users)) {
            sayAdmin(refusal(res), "error");
            return;
        }
        users = res.json.users;
        const body = $("pbx-users-body");
        body.textContent = "";
        for (const u of users) {
            const tr = document.createElement("tr");
            tr.setAttribute("data-user", u.user);
            const name = cell(tr, u.user);
            name.className = "pbx-user";
            cell(tr, u.exempt ? "exempt" : u.required ? "yes" + (u.required_by ? " (" + u.required_by + ")" : "") : "no");
            cell(tr, u.enrolled ? "yes" + (u.created ? ", " + when(u.created, "") : "") : "no", u.required && !u.enrolled);
            cell(tr, when(u.last_success, "never"), isStale(u));
            cell(tr, u.enrolled ? String(u.recovery_codes_left) : "—");
            cell(tr, isLocked(u) ? when(u.locked_until, "") : "—", isLocked(u));
            cell(tr, when(u.temp_code_expires, "—"));
            const actions = cell(tr, "");
            actions.className = "pbx-actions";
            for (const action of Object.keys(ACTIONS)) {
                if (!ACTIONS[action].shown(u))
                    continue;
                const b = document.createElement("button");
                b.type = "button";
                b.className = "pbx-small" + (action === "reset" ? " pbx-danger" : "");
                b.textContent = ACTIONS[action].label(u);
                b.setAttribute("data-action", action);
                b.addEventListener("click", () => adminAction(u, action));
                actions.append(b);
            }
            body.append(tr);
        }
        applyFilter();
    }

    /* ---- start ---------------------------------------------------------------------------- */

    function start() {
        $("pbx-setup").addEventListener("click", beginSetup);
        $("pbx-add-device").addEventListener("click", beginDevice);
        $("pbx-device-begin-ok").addEventListener("click", beginDeviceNamed);
        $("pbx-device-begin-cancel").addEventListener("click", cancel);
        $("pbx-new-recovery").addEventListener("click", newRecovery);
        $("pbx-activate").addEventListener("click", activate);
        $("pbx-cancel").addEventListener("click", cancel);
        $("pbx-recovery-done").addEventListener("click", hideRecovery);
        $("pbx-password").addEventListener("keydown", (ev) => { if (ev.key === "Enter") activate() });
        $("pbx-filter").addEventListener("change", applyFilter);
        $("pbx-refresh").addEventListener("click", () => loadUsers(false));
        // Forget what was typed when the page goes away.
        window.addEventListener("pagehide", clearSetup);

        loadStatus();

        const permission = cockpit.permission({ admin: true });
        function adminChanged() {
            const allowed = permission.allowed === true;
            $("pbx-admin").hidden = !allowed;
            if (allowed)
                loadUsers(false);
        }
        permission.addEventListener("changed", adminChanged);
        adminChanged();
    }

    document.addEventListener("DOMContentLoaded", start);
}());
