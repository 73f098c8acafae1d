// The chanlayer chat page: joins /ws/chat/<room>/ and shows what the room's group delivers.
// Plain browser JavaScript, no build step.
/* global location, history, fetch, URLSearchParams */
'use strict';

const ROOM_NAME = /^[A-Za-z0-9_.-]{1,80}$/;
const $ = (id) => document.getElementById(id);
const roomInput = $('room');
const status = $('status');
const messages = $('messages');
const messageInput = $('message');
const sendButton = $('send');
let socket;

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
  const open = state === 'open';
  messageInput.disabled = !open;
  sendButton.disabled = !open;
  if (open) messageInput.focus();
}

function addLine(text, kind) {
  const li = document.createElement('li');
  li.textContent = text;
  if (kind) li.className = kind;
  messages.append(li);
  messages.scrollTop = messages.scrollHeight;
}

function join(room) {
  if (!ROOM_NAME.test(room)) {
    setStatus('closed', 'room names use letters, digits, "-", "_" and "." (up to 80)');
    return;
  }
  if (socket) {
    socket.onclose = null;
    socket.close(1000);
  }
  const url = new URL(location.href);
  url.searchParams.set('room', room);
  history.replaceState(null, '', url);
  document.title = `${room} · chanlayer chat`;
  messages.replaceChildren();
  setStatus('connecting', `connecting to ${room}…`);
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/ws/chat/${encodeURIComponent(room)}/`);
  socket = ws;
  ws.onopen = () => setStatus('open', `connected to ${room}`);
  ws.onmessage = (event) => {
    try {
      addLine(String(JSON.parse(event.data).message));
    } catch {
      addLine(String(event.data));
    }
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;
    setStatus('closed', `disconnected (${event.code}); press Join to reconnect`);
  };
}

$('room-form').addEventListener('submit', (event) => {
  event.preventDefault();
  join(roomInput.value.trim());
});

$('message-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const message = messageInput.value;
  if (!message || !socket || socket.readyState !== WebSocket.OPEN) return;
  socket.send(JSON.stringify({ message }));
  messageInput.value = '';
});

fetch('/api/info')
  .then((r) => r.json())
  .then((info) => {
    $('server').textContent = `served by 127.0.0.1:${info.port} (pid ${info.pid}) · ${info.layer}`;
  })
  .catch(() => {
    $('server').textContent = '';
  });

roomInput.value = new URLSearchParams(location.search).get('room') || 'lobby';
join(roomInput.value);
