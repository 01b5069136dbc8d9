/**
 * Lab service kinds the XenServer integration needs, registered on import. The `lab up` supervisor imports this
 * module (services.ts, loadLabServiceModules); tests that use `withLab` with these services import it too.
 */
import '../lab/glance-service.js'
