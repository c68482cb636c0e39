/** Path-based navigation without reloads (the control plane answers index.html for these paths). */
import { useEffect, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';

export function usePath(): string {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const on = () => setPath(window.location.pathname);
    window.addEventListener('popstate', on);
    return () => window.removeEventListener('popstate', on);
  }, []);
  return path;
}

export function navigate(path: string): void {
  if (path === window.location.pathname) return;
  window.history.pushState(null, '', path);
  window.dispatchEvent(new PopStateEvent('popstate'));
}

export function Link({ href, children, active }: { href: string; children: ComponentChildren; active?: boolean }) {
  return (
    <a href={href} class={active ? 'active' : ''} aria-current={active ? 'page' : undefined}
      onClick={(e) => { if (e.button === 0 && !e.metaKey && !e.ctrlKey) { e.preventDefault(); navigate(href); } }}>
      {children}
    </a>
  );
}
