import { startGateway, type Gateway, type GatewayConsumer } from './kong-gateway.js';
import {
  KongRpcDriver, buildLauncher, kongPluginConfig, makePrefix, queryPluginInfo, startPluginServer, type PluginInfo,
} from './kong-rpc-driver.js';

// One grip route through the Kong stand-in: the launcher built and started as Kong starts it, one
// plugin instance with `config`, and the gateway in front of a sidecar. Everything it starts is
// stopped by a teardown it registers (ava runs teardowns last-registered first, so register the
// sidecar's and the origin's before calling this).

export async function startGripGateway(
  t: { teardown(fn: () => Promise<void> | void): void },
  options: {
    sidecarPort: number;
    config: Record<string, unknown>;
    entity: { pluginId: string; serviceId?: string; routeId?: string };
    consumers: Record<string, GatewayConsumer>;
  },
): Promise<Gateway> {
  const launcher = await buildLauncher();
  const prefix = makePrefix();
  const { infos } = await queryPluginInfo(launcher.file);
  const server = await startPluginServer(launcher.file, prefix.dir);
  const driver = new KongRpcDriver(server.socketPath);
  const { Id } = await driver.startInstance('grip', kongPluginConfig(infos[0] as PluginInfo, options.config, options.entity));
  const gateway = await startGateway({
    driver: () => driver, sidecarPort: options.sidecarPort,
    route: { instanceId: Id, pluginId: options.entity.pluginId }, consumers: options.consumers,
  });
  t.teardown(async () => {
    driver.close();
    await gateway.close();
    await server.stop();
    launcher.remove();
    prefix.remove();
  });
  return gateway;
}
