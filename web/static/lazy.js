/* What only some views use, loaded the first time one of them is shown: the Socket.IO client
   (views with live data) and Chart.js (the Grid view). Both are classic UMD scripts that set a
   global (io, Chart), so they are added as <script> elements, each at most once. */

const VENDOR = new URL("./vendor/", import.meta.url);
const loading = new Map();  // file -> Promise of its load

/* Load vendor/<file> once; the promise settles when its global is defined. */
export function vendorScript(file) {
  if (!loading.has(file)) {
    loading.set(file, new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = new URL(file, VENDOR).href;
      script.onload = () => resolve();
      script.onerror = () => { loading.delete(file); reject(new Error(`${file} did not load: reload the page`)); };
      document.head.append(script);
    }));
  }
  return loading.get(file);
}

export const loadChart = () => vendorScript("chart.umd.min.js");
export const loadSocketIo = () => vendorScript("socket.io.min.js");

/* A Socket.IO channel whose client is loaded and connected only when open() is first called.
   Handlers given to on() before then are attached on connect, so views can subscribe at login
   and the first view that needs the channel opens it (its server sends a snapshot on connect). */
export class LiveChannel {
  constructor(namespace) {
    this.namespace = namespace;
    this.handlers = [];
    this.socket = null;
    this.closed = false;
    this.opening = null;
  }

  on(event, handler) {
    this.handlers.push([event, handler]);
    if (this.socket) this.socket.on(event, handler);
    return this;
  }

  /* Before the channel is open there is no one to ask: its connect snapshot answers instead. */
  emit(...args) { if (this.socket) this.socket.emit(...args); }

  open() {
    if (!this.opening) {
      this.opening = loadSocketIo().then(() => {
        if (this.closed) return;  // logged out while the client loaded
        /* global io */
        this.socket = io(`/${this.namespace}`, { transports: ["websocket", "polling"] });
        for (const [event, handler] of this.handlers) this.socket.on(event, handler);
      });
    }
    return this.opening;
  }

  disconnect() {
    this.closed = true;
    if (this.socket) this.socket.disconnect();
    this.socket = null;
  }
}
