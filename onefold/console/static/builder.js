// Audience builder: edits a definition as nested groups of conditions, keeps a live count through
// POST /api/audiences/preview, and saves through the admin API with the session's CSRF token.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("builder-data").textContent);
  const form = document.getElementById("builder");
  const csrf = form.dataset.csrf;
  const OPS = ["equals", "not_equals", "in", "contains", "starts_with", "ends_with", "exists", ">", ">=", "<", "<=",
    "between", "before", "after", "within_last_days"];
  const KINDS = {
    event: "performed an event", sequence: "did one event, then", trait: "trait", attribute: "computed attribute",
    aggregate: "total / average of",
    computed_trait: "computed trait", audience: "in audience", consent: "consent", subscription: "subscription",
    reachable: "reachable on", raw: "JSON",
  };
  let root = { group: "and", negate: false, children: [] };

  // --- definition <-> tree ---------------------------------------------------------------------------------
  // A value is typed as text: numbers and true/false read as such, and text in double quotes (JSON) stays
  // text, so "78245" or "true" or "lead, hot" round-trip as the strings they are.
  function parseScalar(text) {
    const t = text.trim();
    if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) {
      try { return JSON.parse(t); } catch (error) { return text; }
    }
    if (t !== "" && !isNaN(Number(t))) return Number(t);
    if (t === "true" || t === "false") return t === "true";
    return text;
  }
  function splitList(text) {  // on commas outside double quotes
    const parts = [];
    let current = "", quoted = false, escaped = false;
    for (const ch of text) {
      if (ch === "," && !quoted) { parts.push(current); current = ""; continue; }
      if (ch === '"' && !escaped) quoted = !quoted;
      escaped = ch === "\\" && !escaped;
      current += ch;
    }
    parts.push(current);
    return parts;
  }
  function parseValue(text, op) {
    if (op === "exists") return undefined;
    if (op === "in" || op === "between") return splitList(text).map((part) => parseScalar(part.trim()));
    return parseScalar(text);
  }
  function showScalar(value, inList) {
    if (typeof value !== "string") return String(value);
    const plain = parseScalar(inList ? value.trim() : value) === value && !value.startsWith('"');
    return plain && !(inList && (value.includes(",") || value !== value.trim())) ? value : JSON.stringify(value);
  }
  function showValue(value) {
    if (value === undefined || value === null) return "";
    return Array.isArray(value) ? value.map((v) => showScalar(v, true)).join(", ") : showScalar(value, false);
  }
  function compare(node, key) {
    const out = { [key]: node.name, op: node.op };
    if (node.op !== "exists") out.value = parseValue(node.value, node.op);
    return out;
  }
  function toDefinition(node) {
    let out;
    if (node.group) {
      const children = node.children.map(toDefinition);
      out = children.length === 1 ? children[0] : { [node.group]: children };
    } else if (node.kind === "event") {
      out = { event: node.name };
      if (!node.performed) out.performed = false;
      if (node.performed && node.countValue !== "") out.count = { op: node.countOp, value: Number(node.countValue) };
      if (node.whereProperty) out.where = [{ property: node.whereProperty, op: node.whereOp, value: parseValue(node.whereValue, node.whereOp) }];
      if (node.days !== "") out.within_days = Number(node.days);
    } else if (node.kind === "sequence") {
      out = { sequence: { first: { event: node.name }, then: { event: node.thenEvent },
        within_minutes: Number(node.minutes), then_performed: node.performed } };
      if (node.days !== "") out.sequence.within_days = Number(node.days);
    } else if (node.kind === "aggregate") {
      out = { aggregate: node.fn, property: node.property, event: node.name, op: node.op, value: parseValue(node.value, node.op) };
      if (node.days !== "") out.within_days = Number(node.days);
    } else if (node.kind === "trait" || node.kind === "attribute" || node.kind === "computed_trait") {
      out = compare(node, node.kind);
    } else if (node.kind === "audience") {
      out = { audience: node.name };
    } else if (node.kind === "consent") {
      out = { consent: node.name, granted: node.granted };
    } else if (node.kind === "subscription") {
      out = { subscription: node.name, status: node.status };
    } else if (node.kind === "reachable") {
      out = { reachable: node.name };
    } else {
      try { out = JSON.parse(node.raw); } catch (error) { out = { invalid_json: node.raw }; }
    }
    return node.negate ? { not: out } : out;
  }
  function leaf(kind) {
    const first = { event: data.events[0], sequence: data.events[0], trait: data.traits[0], attribute: data.attributes[0],
      computed_trait: data.computed_traits[0], audience: data.audiences[0], consent: "marketing", subscription: "email", reachable: "email" };
    return { kind, negate: false, name: first[kind] || "", op: kind === "attribute" ? ">=" : "equals", value: "",
      performed: true, countOp: ">=", countValue: "", days: "", whereProperty: "", whereOp: "equals", whereValue: "",
      fn: "sum", property: "revenue", granted: true, status: "subscribed", raw: "{}", thenEvent: data.events[1] || "", minutes: "60" };
  }
  function fromDefinition(def) {
    const negate = def && typeof def === "object" && "not" in def && Object.keys(def).length === 1;
    const inner = negate ? def.not : def;
    const node = fromPositive(inner);
    node.negate = negate;
    return node;
  }
  function fromPositive(def) {
    if (def.and || def.or) {
      const group = def.and ? "and" : "or";
      return { group, negate: false, children: def[group].map(fromDefinition) };
    }
    for (const kind of ["trait", "attribute", "computed_trait"]) {
      if (kind in def && Object.keys(def).every((k) => [kind, "op", "value"].includes(k))) {
        return { ...leaf(kind), name: def[kind], op: def.op, value: showValue(def.value) };
      }
    }
    const simpleEvent = "event" in def && !("aggregate" in def) && (def.where || []).length <= 1 && !def.between &&
      Object.keys(def).every((k) => ["event", "performed", "count", "where", "within_days"].includes(k));
    if (simpleEvent) {
      const where = (def.where || [])[0] || {};
      return { ...leaf("event"), name: def.event, performed: def.performed !== false,
        countOp: def.count ? def.count.op : ">=", countValue: def.count ? String(def.count.value) : "",
        days: def.within_days !== undefined ? String(def.within_days) : "", whereProperty: where.property || "",
        whereOp: where.op || "equals", whereValue: showValue(where.value) };
    }
    const seq = def.sequence;
    const plain = (step) => step && Object.keys(step).length === 1 && typeof step.event === "string";
    if (seq && Object.keys(def).length === 1 && plain(seq.first) && plain(seq.then)) {
      return { ...leaf("sequence"), name: seq.first.event, thenEvent: seq.then.event,
        minutes: String(seq.within_minutes), performed: seq.then_performed !== false,
        days: seq.within_days !== undefined ? String(seq.within_days) : "" };
    }
    if ("aggregate" in def && !def.where && !def.between) {
      return { ...leaf("aggregate"), fn: def.aggregate, property: def.property, name: def.event, op: def.op,
        value: showValue(def.value), days: def.within_days !== undefined ? String(def.within_days) : "" };
    }
    if ("audience" in def) return { ...leaf("audience"), name: def.audience };
    if ("consent" in def) return { ...leaf("consent"), name: def.consent, granted: def.granted !== false };
    if ("subscription" in def) return { ...leaf("subscription"), name: def.subscription, status: def.status || "subscribed" };
    if ("reachable" in def) return { ...leaf("reachable"), name: def.reachable };
    return { ...leaf("raw"), raw: JSON.stringify(def, null, 2) };
  }

  // --- rendering ---------------------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const element = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
      else if (value !== undefined && value !== false) element.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) if (child !== null) element.append(child);
    return element;
  }
  function select(options, value, onChange, label) {
    // options: values, or [value, label] pairs
    const element = el("select", { "aria-label": label, onchange: (e) => onChange(e.target.value) },
      options.map((o) => Array.isArray(o) ? el("option", { value: o[0] }, o[1]) : el("option", { value: o }, o)));
    element.value = value;
    return element;
  }
  function field(node, key, label, attrs) {
    return el("input", { value: node[key], "aria-label": label, placeholder: label, ...(attrs || {}),
      oninput: (e) => { node[key] = e.target.value; changed(false); } });
  }
  function datalistInput(node, key, label, list) {
    return field(node, key, label, { list });
  }
  function set(node, key) { return (value) => { node[key] = value; changed(true); }; }

  function conditionFields(node) {
    const opSelect = () => select(OPS, node.op, set(node, "op"), "operator");
    switch (node.kind) {
      case "event":
        return [
          select(["did", "did not"], node.performed ? "did" : "did not", (v) => { node.performed = v === "did"; changed(true); }, "performed"),
          datalistInput(node, "name", "event name", "dl-events"),
          node.performed ? [select([">=", "<=", "="], node.countOp, set(node, "countOp"), "count operator"),
            field(node, "countValue", "times", { type: "number", min: "0" })] : [],
          el("span", {}, "where"), field(node, "whereProperty", "property (optional)"),
          select(OPS, node.whereOp, set(node, "whereOp"), "property operator"), field(node, "whereValue", "value"),
          el("span", {}, "in the last"), field(node, "days", "days", { type: "number", min: "1" }), el("span", {}, "days"),
        ];
      case "sequence":
        return [
          datalistInput(node, "name", "first event", "dl-events"),
          select(["then did", "then did not"], node.performed ? "then did" : "then did not",
            (v) => { node.performed = v === "then did"; changed(true); }, "then performed"),
          datalistInput(node, "thenEvent", "then event", "dl-events"),
          el("span", {}, "within"), field(node, "minutes", "minutes", { type: "number", min: "1" }),
          el("span", {}, "minutes; first event in the last"), field(node, "days", "days", { type: "number", min: "1" }),
          el("span", {}, "days"),
        ];
      case "aggregate":
        return [select(["sum", "avg", "min", "max"], node.fn, set(node, "fn"), "aggregate"),
          field(node, "property", "property"), el("span", {}, "of"), datalistInput(node, "name", "event name", "dl-events"),
          opSelect(), field(node, "value", "value"), el("span", {}, "in the last"),
          field(node, "days", "days", { type: "number", min: "1" }), el("span", {}, "days")];
      case "trait":
        return [datalistInput(node, "name", "trait name", "dl-traits"), opSelect(), field(node, "value", "value")];
      case "attribute":
        return [select(data.attributes, node.name, set(node, "name"), "attribute"), opSelect(), field(node, "value", "value")];
      case "computed_trait":
        return [select(data.computed_traits, node.name, set(node, "name"), "computed trait"), opSelect(), field(node, "value", "value")];
      case "audience":
        return [select(data.audiences, node.name, set(node, "name"), "audience")];
      case "consent":
        return [field(node, "name", "purpose"),
          select(["granted", "denied"], node.granted ? "granted" : "denied", (v) => { node.granted = v === "granted"; changed(true); }, "granted")];
      case "subscription":
        return [select(["email", "sms"], node.name, set(node, "name"), "channel"),
          select(data.subscription_statuses, node.status, set(node, "status"), "status")];
      case "reachable":
        return [select(["email", "sms"], node.name, set(node, "name"), "channel")];
      default:
        return [el("textarea", { rows: 3, "aria-label": "condition as JSON",
          oninput: (e) => { node.raw = e.target.value; changed(false); } }, node.raw)];
    }
  }
  function notToggle(node) {
    return el("label", { class: "check" }, el("input", { type: "checkbox", checked: node.negate,
      onchange: (e) => { node.negate = e.target.checked; changed(false); } }), "not");
  }
  function renderNode(node, parent) {
    const remove = parent ? el("button", { type: "button", class: "small danger", "aria-label": "remove",
      onclick: () => { parent.children.splice(parent.children.indexOf(node), 1); changed(true); } }, "✕") : null;
    if (!node.group) {
      return el("div", { class: "cond" }, notToggle(node),
        select(Object.entries(KINDS), node.kind, (kind) => { Object.assign(node, leaf(kind)); changed(true); }, "condition kind"),
        conditionFields(node), remove);
    }
    return el("div", { class: "group", role: "group" },
      el("div", { class: "group-head" }, notToggle(node), el("span", {}, "match"),
        select(["and", "or"], node.group, set(node, "group"), "all or any"),
        el("span", { class: "muted" }, node.group === "and" ? "all of these" : "any of these"), remove),
      node.children.map((child) => renderNode(child, node)),
      el("div", { class: "group-head" },
        el("button", { type: "button", class: "small", onclick: () => { node.children.push(leaf("event")); changed(true); } }, "+ condition"),
        el("button", { type: "button", class: "small", onclick: () => { node.children.push({ group: node.group === "and" ? "or" : "and", negate: false, children: [leaf("trait")] }); changed(true); } }, "+ group")));
  }
  function datalists() {
    return [["dl-events", data.events], ["dl-traits", data.traits]].map(([id, items]) =>
      el("datalist", { id }, items.map((item) => el("option", { value: item }))));
  }

  // --- live count and save ---------------------------------------------------------------------------------
  let timer = null;
  let generation = 0;
  function changed(redraw) {
    if (redraw) draw();
    document.getElementById("json").value = JSON.stringify(toDefinition(root), null, 2);
    clearTimeout(timer);
    timer = setTimeout(preview, 350);
  }
  async function api(method, url, body) {
    const response = await fetch(url, { method, body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf } });
    const payload = response.status === 204 ? {} : await response.json();
    if (!response.ok) throw new Error(payload.error ? payload.error.message : response.statusText);
    return payload;
  }
  function problem(message) {
    const element = document.getElementById("problem");
    element.hidden = !message;
    element.textContent = message || "";
  }
  async function preview() {
    const mine = ++generation;
    const count = document.getElementById("count");
    if (!root.children.length) { count.textContent = "–"; problem("Add a condition to see who matches."); return; }
    count.setAttribute("aria-busy", "true");
    try {
      const result = await api("POST", "/api/audiences/preview", { definition: toDefinition(root), limit: 5 });
      if (mine !== generation) return;
      problem("");
      count.textContent = new Intl.NumberFormat("en-US").format(result.count) + " profiles";
      document.getElementById("sample").replaceChildren(...result.sample.map((p) =>
        el("li", {}, el("a", { href: "/console/profiles/" + p.profile_id }, p.traits.email || p.traits.name || p.profile_id))));
    } catch (error) {
      if (mine !== generation) return;
      count.textContent = "–";
      problem(error.message);
    } finally {
      count.removeAttribute("aria-busy");
    }
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = document.getElementById("name").value.trim();
    const body = { name, description: document.getElementById("description").value, definition: toDefinition(root) };
    const save = document.getElementById("save");
    save.disabled = true;
    try {
      if (data.existing) await api("PUT", "/api/audiences/" + encodeURIComponent(data.existing.name), body);
      else await api("POST", "/api/audiences", body);
      window.location.href = "/console/audiences/" + encodeURIComponent(name);
    } catch (error) {
      problem(error.message);
      save.disabled = false;
    }
  });
  document.getElementById("apply-json").addEventListener("click", () => {
    try {
      const parsed = fromDefinition(JSON.parse(document.getElementById("json").value));
      root = parsed.group ? parsed : { group: "and", negate: false, children: [parsed] };
      changed(true);
    } catch (error) {
      problem("The JSON does not parse: " + error.message);
    }
  });

  function draw() {
    document.getElementById("tree").replaceChildren(renderNode(root, null), ...datalists());
  }
  if (data.existing) {
    const parsed = fromDefinition(data.existing.definition);
    root = parsed.group ? parsed : { group: "and", negate: false, children: [parsed] };
    document.getElementById("name").value = data.existing.name;
    document.getElementById("name").readOnly = true;
    document.getElementById("description").value = data.existing.description;
  } else {
    root.children.push(leaf("event"));
  }
  changed(true);
})();
