# `make install` (or `cmake --install BUILD [--prefix P]`): the daemon in sbin, the tool in
# bin, the example configuration, the docs, the systemd unit and the logrotate snippet in
# the usual places. Nothing is written to the configuration directory itself: an existing
# /etc/gatewayd/gateway.conf is never overwritten.
include(GNUInstallDirs)

# The unit names absolute paths: filled in at install time, so `--prefix` is honoured
# (prefix /usr keeps its configuration in /etc, as GNUInstallDirs does).
install(CODE "
  set(GW_SBINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SBINDIR}\")
  set(GW_DOCDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATAROOTDIR}/doc/gatewayd\")
  if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
    set(GW_CONFDIR /etc/gatewayd)
  else()
    set(GW_CONFDIR \"\${CMAKE_INSTALL_PREFIX}/etc/gatewayd\")
  endif()
  configure_file(\"${PROJECT_SOURCE_DIR}/contrib/gatewayd.service\"
                 \"${PROJECT_BINARY_DIR}/contrib/gatewayd.service\" @ONLY)
")
if(TARGET gatewayd)
  install(TARGETS gatewayd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
endif()
if(TARGET gatewayctl)
  install(TARGETS gatewayctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(FILES ${PROJECT_SOURCE_DIR}/conf/gateway.conf.example
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/gatewayd/examples)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/conf/policy.d
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/gatewayd/examples OPTIONAL)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/gatewayd)
file(GLOB gw_docs ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${gw_docs} DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/gatewayd)
# systemd looks in PREFIX/lib/systemd/system for /usr and /usr/local alike.
install(FILES ${PROJECT_BINARY_DIR}/contrib/gatewayd.service DESTINATION lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/contrib/logrotate
        DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}/logrotate.d RENAME gatewayd)
