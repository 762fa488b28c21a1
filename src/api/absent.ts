/**
 * The Engine API areas berth has none of: swarm mode and plugins. They answer as dockerd answers on
 * a node that is in no swarm and has no plugin installed (what berth truthfully is), and whatever
 * would make a swarm or install a plugin is refused with a 400 that says so.
 */
import { InvalidParameter, NotFound, Unavailable } from '../errors.js';
import type { Router } from './server.js';

/** dockerd's 503 for swarm-only requests on a node outside any swarm. */
const NOT_A_MANAGER = 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';

export function absentRoutes(router: Router): void {
  const notManager = () => { throw new Unavailable(NOT_A_MANAGER); };
  const noSwarm = () => { throw new InvalidParameter('swarm mode is not supported by berth'); };
  router.post('/swarm/init', noSwarm);
  router.post('/swarm/join', noSwarm);
  router.post('/swarm/leave', () => { throw new Unavailable('This node is not part of a swarm'); });
  router.get('/swarm', notManager);
  router.post('/swarm/update', notManager);
  router.get('/swarm/unlockkey', notManager);
  router.post('/swarm/unlock', notManager);
  for (const kind of ['nodes', 'services', 'tasks', 'secrets', 'configs']) {
    router.get(`/${kind}`, notManager);
    router.get(`/${kind}/{id}`, notManager);
    router.delete(`/${kind}/{id}`, notManager);
    router.post(`/${kind}/{id}/update`, notManager);
    if (kind === 'services' || kind === 'secrets' || kind === 'configs') router.post(`/${kind}/create`, notManager);
    if (kind === 'services' || kind === 'tasks') router.get(`/${kind}/{id}/logs`, notManager);
  }

  const noPlugins = () => { throw new InvalidParameter('plugins are not supported by berth'); };
  const noSuchPlugin = (name: string) => { throw new NotFound(`plugin "${name}" not found`); };
  router.get('/plugins', () => []);
  router.get('/plugins/privileges', noPlugins);
  router.post('/plugins/pull', noPlugins);
  router.post('/plugins/create', noPlugins);
  router.get('/plugins/{name:.+}/json', (ctx) => noSuchPlugin(ctx.params.name));
  router.delete('/plugins/{name:.+}', (ctx) => noSuchPlugin(ctx.params.name));
  for (const op of ['enable', 'disable', 'upgrade', 'push', 'set']) router.post(`/plugins/{name:.+}/${op}`, (ctx) => noSuchPlugin(ctx.params.name));
}
