// A small, tolerant XML reader for UPnP device descriptions and SOAP replies.
// It builds a tree of elements named by their local name (the namespace
// prefix dropped, as UPnP documents spell prefixes freely) with their text;
// attributes, comments, processing instructions and doctypes are skipped.
// Malformed input never throws: an unclosed element ends at the end of the
// input, a stray end tag is ignored, and scanning stops at the first
// construct that never ends. Element count and depth are bounded, so a
// hostile document costs at most linear time.

export interface XmlElement {
  /** The local name: `s:Envelope` is "Envelope". */
  name: string;
  children: XmlElement[];
  /** The element's own text (not its children's), entities decoded. */
  text: string;
}

const MAX_ELEMENTS = 5000;
const MAX_DEPTH = 32;

/** The document as a tree under a root named "". */
export function parseXml(source: string): XmlElement {
  const root: XmlElement = { name: "", children: [], text: "" };
  const stack: XmlElement[] = [root];
  let count = 0;
  let i = 0;
  while (i < source.length) {
    const open = source.indexOf("<", i);
    const textEnd = open < 0 ? source.length : open;
    if (textEnd > i) {
      stack.at(-1)!.text += decodeEntities(source.slice(i, textEnd));
    }
    if (open < 0) break;
    if (source.startsWith("<!--", open)) {
      i = skipPast(source, open, "-->");
    } else if (source.startsWith("<![CDATA[", open)) {
      const end = source.indexOf("]]>", open);
      if (end < 0) break;
      stack.at(-1)!.text += source.slice(open + 9, end);
      i = end + 3;
    } else if (source.startsWith("<?", open)) {
      i = skipPast(source, open, "?>");
    } else if (source.startsWith("<!", open) || source.startsWith("</", open)) {
      const end = source.indexOf(">", open);
      if (end < 0) break;
      if (source[open + 1] === "/") {
        closeElement(stack, localName(source.slice(open + 2, end).trim()));
      }
      i = end + 1;
    } else {
      const end = tagEnd(source, open);
      if (end < 0) break;
      const tag = source.slice(open + 1, end);
      const name = localName(tag.split(/[\s/]/, 1)[0]);
      i = end + 1;
      if (name === "") continue;
      if (++count > MAX_ELEMENTS) break;
      const element: XmlElement = { name, children: [], text: "" };
      if (stack.length <= MAX_DEPTH) stack.at(-1)!.children.push(element);
      if (!tag.endsWith("/") && stack.length <= MAX_DEPTH) stack.push(element);
    }
    if (i < 0) break;
  }
  return root;
}

/** Every element named `name` under `element`, in document order. */
export function descendants(element: XmlElement, name: string): XmlElement[] {
  const found: XmlElement[] = [];
  const visit = (e: XmlElement) => {
    for (const child of e.children) {
      if (child.name === name) found.push(child);
      visit(child);
    }
  };
  visit(element);
  return found;
}

/** The trimmed text of the first child named `name`, if there is one. */
export function childText(
  element: XmlElement,
  name: string,
): string | undefined {
  return element.children.find((c) => c.name === name)?.text.trim();
}

/** Escapes text for an element's content. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ESCAPES[c]);
}

const ESCAPES: Record<string, string> = {
  "<": "&lt;",
  ">": "&gt;",
  "&": "&amp;",
  '"': "&quot;",
  "'": "&apos;",
};
const ENTITIES: Record<string, string> = {
  lt: "<",
  gt: ">",
  amp: "&",
  quot: '"',
  apos: "'",
};

function decodeEntities(text: string): string {
  return text.replace(
    /&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-z]+);/g,
    (all, e) => {
      if (e[0] !== "#") return ENTITIES[e] ?? all;
      const code = e[1] === "x" ? parseInt(e.slice(2), 16) : Number(e.slice(1));
      return code <= 0x10ffff ? String.fromCodePoint(code) : all;
    },
  );
}

/** The index of the `>` ending the start tag at `open`, skipping quoted attribute values. */
function tagEnd(source: string, open: number): number {
  let quote = "";
  for (let j = open + 1; j < source.length; j++) {
    const c = source[j];
    if (quote) {
      if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === ">") return j;
  }
  return -1;
}

/** Pops to the innermost open element of that name; an end tag nothing opened is ignored. */
function closeElement(stack: XmlElement[], name: string): void {
  for (let k = stack.length - 1; k > 0; k--) {
    if (stack[k].name === name) {
      stack.length = k;
      return;
    }
  }
}

function skipPast(source: string, from: number, marker: string): number {
  const end = source.indexOf(marker, from);
  return end < 0 ? -1 : end + marker.length;
}

function localName(qualified: string): string {
  return qualified.slice(qualified.indexOf(":") + 1);
}
