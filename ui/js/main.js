// main.js - the page's entry: the views, the navigation made from them, the stream's
// state in the header, and the router.
//
// A view is a module that adds its routes (router.js) when imported and exports `nav`
// ({label, href, segment}); adding a view is one line in `views` below.
import { h } from './dom.js';
import { start, onNavigate } from './router.js';
import { onLive } from './registry.js';
import { clearNotice } from './notice.js';
import * as services from './views/services.js';
import * as gateway from './views/gateway.js';
import * as breakers from './views/breakers.js';
import * as traces from './views/traces.js';
import * as map from './views/map.js';

const views = [services, gateway, breakers, traces, map];

const navList = document.getElementById('nav');
const links = views.map((v) => {
  const a = h('a', { href: v.nav.href }, v.nav.label);
  navList.append(h('li', {}, a));
  return { a, segment: v.nav.segment };
});
onNavigate((segment) => {
  clearNotice(); // a message is about the view it was given in
  for (const l of links) {
    if (l.segment === segment) l.a.setAttribute('aria-current', 'page');
    else l.a.removeAttribute('aria-current');
  }
});

const liveEl = document.getElementById('live');
const LIVE_TEXT = { connecting: 'connecting…', live: 'live', down: 'reconnecting…' };
onLive((s) => {
  liveEl.dataset.state = s;
  liveEl.textContent = LIVE_TEXT[s];
});

start(document.getElementById('main'));
